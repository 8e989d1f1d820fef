"""Accounts' default fallback models against the catalog: a fallback names a model (slug or
alias), optionally with a `:provider` suffix naming a provider or channel of it, read exactly
as the engine reads it. The gateway refuses every request of an account whose default fallback
names nothing, so the catalog keeps every stored fallback resolvable."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store import tables as t
from muxgate.store.errors import Conflict, Invalid


def names_channel(channel_id: str, provider_id: str, pin: str) -> bool:
    """Does a `model:provider` suffix designate this channel? Its id, its provider's id, or
    `provider/channel` (as the engine reads it)."""
    return pin in (channel_id, provider_id, f"{provider_id}/{channel_id}")


def split_fallback(name: str, models: Mapping[str, str]) -> tuple[str, str | None] | None:
    """(model slug, pin) a fallback name designates, given every model name (slugs and aliases)
    mapped to its slug; None when it names no model. A whole name that is a model wins over a
    `:provider` suffix, as in the engine."""
    if name in models:
        return models[name], None
    base, sep, pin = name.rpartition(":")
    if not sep or not pin or base not in models:
        return None
    return models[base], pin


async def _fallback_problem(conn: AsyncConnection, name: str) -> str | None:
    """Why `name` cannot be a default fallback, or None when it can."""
    names = t.model_names
    candidates = [name, name.rpartition(":")[0]]
    rows = await conn.execute(
        select(names.c.name, names.c.model_slug).where(names.c.name.in_(candidates))
    )
    found = split_fallback(name, {n: slug for n, slug in rows})
    if found is None:
        return f"no model or alias {name!r}"
    slug, pin = found
    if pin is None:
        return None
    served = await conn.execute(
        select(t.channels.c.id, t.channels.c.provider_id).where(t.channels.c.model_slug == slug)
    )
    if not any(names_channel(c, p, pin) for c, p in served):
        return f"no provider or channel {pin!r} serves model {slug!r}"
    return None


async def check_fallback(conn: AsyncConnection, name: str, field: str) -> None:
    """Refuse a default fallback that names no model (slug or alias), or whose `:provider`
    suffix names no provider or channel of it."""
    problem = await _fallback_problem(conn, name)
    if problem is not None:
        raise Invalid(problem, field)


async def _fallbacks(conn: AsyncConnection) -> list[tuple[str, str]]:
    """(account, default fallback) of every account that has one."""
    a = t.accounts
    rows = await conn.execute(
        select(a.c.id, a.c.default_fallback)
        .where(a.c.default_fallback.is_not(None))
        .order_by(a.c.id)
    )
    return [(ident, name) for ident, name in rows]


async def fallback_users(conn: AsyncConnection, slug: str) -> list[str]:
    """Accounts whose default fallback is model `slug` (by any of its names)."""
    given = await _fallbacks(conn)
    if not given:
        return []
    names = t.model_names
    rows = await conn.execute(select(names.c.name, names.c.model_slug))
    models = {n: s for n, s in rows}
    return [a for a, name in given if (split_fallback(name, models) or ("", None))[0] == slug]


async def check_fallbacks_kept(conn: AsyncConnection, what: str, field: str) -> None:
    """After a catalog change, refuse it (inside its transaction) when some account's default
    fallback no longer resolves: the gateway refuses every request of an account whose
    default fallback names nothing, so the change waits until those accounts choose another."""
    broken = [
        ident
        for ident, name in await _fallbacks(conn)
        if await _fallback_problem(conn, name) is not None
    ]
    if broken:
        raise Conflict(
            f"{what} is needed by the default fallback of accounts {', '.join(broken)}; "
            "change theirs first",
            field,
        )
