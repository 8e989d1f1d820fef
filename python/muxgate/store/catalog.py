"""The catalog: providers (where requests go), models (what clients ask for, with aliases)
and channels (a model served by a provider at a price). Prices are nano-USD per million
tokens; a provider credential is an environment variable name or an encrypted secret, and its
extra headers name environment variables too: no secret is stored in clear."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate import credentials
from muxgate.provider_secrets import base_url_problem, headers_env_problem
from muxgate.store import tables as t
from muxgate.store.errors import Conflict, Invalid, SecretKeyMissing
from muxgate.store.fallbacks import check_fallbacks_kept, fallback_users
from muxgate.store.ledger import now_utc
from muxgate.store.rows import conflict_on_integrity, delete, fetch, to_record, unset_free, update
from muxgate.store.store import Store
from muxgate.wire import PROTOCOLS

U32_MAX = 2**32 - 1
MAX_ATTEMPTS = (1, 20)
TIMEOUT_MS = (1, 86_400_000)
# The stored timeout of each `wire.Timeouts` field, on models and channels alike.
TIMEOUT_COLUMNS = {
    "first_byte_ms": "first_byte_timeout_ms",
    "idle_ms": "idle_timeout_ms",
    "total_ms": "total_timeout_ms",
}


class ProviderRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    base_url: str
    protocol: str
    credential_env: str | None
    credential_encrypted: str | None
    headers_env: dict[str, str]
    """Header name -> the environment variable the workers read its value from."""
    connect_timeout_ms: int
    created_at: datetime


class ModelRecord(msgspec.Struct, frozen=True, kw_only=True):
    slug: str
    aliases: list[str]
    context_length: int | None
    capabilities: list[str]
    max_attempts: int | None = None
    """Attempts across the model's channels, the first included (the settings' when None)."""
    first_byte_timeout_ms: int | None = None
    """The timeouts of its channels that set none (the built-in defaults when None)."""
    idle_timeout_ms: int | None = None
    total_timeout_ms: int | None = None
    created_at: datetime


class ChannelRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    model_slug: str
    provider_id: str
    upstream_model: str
    weight: int
    price_prompt_nano: int
    price_completion_nano: int
    price_cached_nano: int
    first_byte_timeout_ms: int | None
    """None: the model's, else the built-in default (so is each timeout)."""
    idle_timeout_ms: int | None
    total_timeout_ms: int | None
    enabled: bool
    created_at: datetime


async def _exists(conn: AsyncConnection, column: Any, value: str) -> bool:
    return bool((await conn.execute(select(exists().where(column == value)))).scalar())


def _in_range(values: Mapping[str, Any], names: Sequence[str], low: int, high: int) -> None:
    for name in names:
        value = values.get(name)
        if value is not None and not low <= value <= high:
            raise Invalid(f"must be between {low} and {high}", name)


# -- providers ------------------------------------------------------------------------------


def _provider_values(store: Store, given: dict[str, Any]) -> dict[str, Any]:
    """Checks and the credential turned into what is stored (env name or ciphertext)."""
    values = dict(given)
    problem = base_url_problem(values["base_url"]) if "base_url" in values else None
    if problem is not None:
        raise Invalid(problem, "base_url")
    bad_header = headers_env_problem(values["headers_env"]) if "headers_env" in values else None
    if bad_header is not None:
        header, why = bad_header
        raise Invalid(f"{header}: {why}", "headers_env")
    if "protocol" in values and values["protocol"] not in PROTOCOLS:
        raise Invalid(f"supported protocols: {', '.join(PROTOCOLS)}", "protocol")
    _in_range(values, ["connect_timeout_ms"], 1, 600_000)
    credential = values.pop("credential", msgspec.UNSET)
    env = values.get("credential_env")
    if credential not in (msgspec.UNSET, None) and env is not None:
        raise Invalid("give credential or credential_env, not both", "credential")
    if credential is not msgspec.UNSET:
        try:
            values["credential_encrypted"] = (
                None if credential is None else store.cipher.encrypt(credential)
            )
        except credentials.SecretKeyMissing as exc:
            raise SecretKeyMissing(str(exc), "credential") from exc
        if credential is not None:
            values["credential_env"] = None
    if env is not None:
        values["credential_encrypted"] = None
    return values


async def create_provider(
    store: Store,
    provider_id: str,
    *,
    base_url: str,
    protocol: str = "openai",
    credential_env: str | None = None,
    credential: str | None = None,
    headers_env: Mapping[str, str] | None = None,
    connect_timeout_ms: int = 5_000,
    now: datetime | None = None,
) -> ProviderRecord:
    values = _provider_values(
        store,
        {
            "base_url": base_url,
            "protocol": protocol,
            "credential_env": credential_env,
            "credential": credential,
            "headers_env": dict(headers_env or {}),
            "connect_timeout_ms": connect_timeout_ms,
        },
    )
    values.update(id=provider_id, created_at=now or now_utc())
    values.setdefault("credential_encrypted", None)
    message = f"provider {provider_id!r} already exists"
    async with store.transaction() as conn:
        if await _exists(conn, t.providers.c.id, provider_id):
            raise Conflict(message, "id")
        async with conflict_on_integrity(message, "id"):
            await conn.execute(t.providers.insert().values(values))
        return to_record(
            await fetch(conn, t.providers, t.providers.c.id, provider_id, "provider"),
            ProviderRecord,
        )


async def get_provider(store: Store, provider_id: str) -> ProviderRecord:
    async with store.read() as conn:
        row = await fetch(conn, t.providers, t.providers.c.id, provider_id, "provider")
        return to_record(row, ProviderRecord)


async def list_providers(store: Store) -> list[ProviderRecord]:
    async with store.read() as conn:
        rows = await conn.execute(t.providers.select().order_by(t.providers.c.id))
        return [to_record(r, ProviderRecord) for r in rows]


async def update_provider(store: Store, provider_id: str, **changes: Any) -> ProviderRecord:
    """Change some fields: base_url, protocol, credential_env, credential (None clears it),
    headers_env, connect_timeout_ms; unset fields (msgspec.UNSET) are kept."""
    allowed = {"base_url", "protocol", "credential_env", "credential", "headers_env"}
    allowed.add("connect_timeout_ms")
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"unknown provider fields: {sorted(unknown)}")
    values = _provider_values(store, unset_free(changes))
    async with store.transaction() as conn:
        row = await update(
            conn, t.providers, t.providers.c.id, provider_id, "provider", values=values
        )
        return to_record(row, ProviderRecord)


async def delete_provider(store: Store, provider_id: str) -> None:
    async with store.transaction() as conn:
        if await _exists(conn, t.channels.c.provider_id, provider_id):
            raise Conflict(f"provider {provider_id!r} is used by channels", "id")
        async with conflict_on_integrity(f"provider {provider_id!r} is used by channels", "id"):
            await delete(conn, t.providers, t.providers.c.id, provider_id, "provider")


# -- models ---------------------------------------------------------------------------------


async def _set_names(conn: AsyncConnection, slug: str, aliases: Sequence[str]) -> None:
    """(Re)write the model's names; a name another model holds is a conflict."""
    if slug in aliases:
        raise Invalid("an alias must differ from the slug", "aliases")
    if len(set(aliases)) != len(aliases):
        raise Invalid("duplicate alias", "aliases")
    names = t.model_names
    await conn.execute(names.delete().where(names.c.model_slug == slug))
    wanted = [slug, *aliases]
    taken = await conn.execute(
        select(names.c.name, names.c.model_slug).where(names.c.name.in_(wanted))
    )
    for name, owner in taken:
        field = "slug" if name == slug else f"aliases[{list(aliases).index(name)}]"
        raise Conflict(f"{name!r} is already a name of model {owner!r}", field)
    rows = [
        {"name": n, "model_slug": slug, "is_alias": i > 0, "position": i}
        for i, n in enumerate(wanted)
    ]
    async with conflict_on_integrity("a model name is already taken", "aliases"):
        await conn.execute(names.insert(), rows)


async def _load_model(conn: AsyncConnection, slug: str) -> ModelRecord:
    row = await fetch(conn, t.models, t.models.c.slug, slug, "model")
    return (await _model_records(conn, [row]))[0]


async def _model_records(
    conn: AsyncConnection, rows: Sequence[Any], *, everything: bool = False
) -> list[ModelRecord]:
    names = t.model_names
    aliases: dict[str, list[str]] = {}
    query = (
        select(names.c.model_slug, names.c.name)
        .where(names.c.is_alias)
        .order_by(names.c.model_slug, names.c.position)
    )
    if not everything:
        query = query.where(names.c.model_slug.in_([r.slug for r in rows]))
    for slug, name in await conn.execute(query):
        aliases.setdefault(slug, []).append(name)
    return [to_record(r, ModelRecord, aliases=aliases.get(r.slug, [])) for r in rows]


async def create_model(
    store: Store,
    slug: str,
    *,
    aliases: Sequence[str] = (),
    context_length: int | None = None,
    capabilities: Sequence[str] = (),
    max_attempts: int | None = None,
    first_byte_timeout_ms: int | None = None,
    idle_timeout_ms: int | None = None,
    total_timeout_ms: int | None = None,
    now: datetime | None = None,
) -> ModelRecord:
    timeouts = {
        "first_byte_timeout_ms": first_byte_timeout_ms,
        "idle_timeout_ms": idle_timeout_ms,
        "total_timeout_ms": total_timeout_ms,
    }
    _in_range({"context_length": context_length}, ["context_length"], 1, U32_MAX)
    _in_range({"max_attempts": max_attempts}, ["max_attempts"], *MAX_ATTEMPTS)
    _in_range(timeouts, list(timeouts), *TIMEOUT_MS)
    async with store.transaction() as conn:
        if await _exists(conn, t.models.c.slug, slug):
            raise Conflict(f"model {slug!r} already exists", "slug")
        async with conflict_on_integrity(f"model {slug!r} already exists", "slug"):
            await conn.execute(
                t.models.insert().values(
                    slug=slug,
                    context_length=context_length,
                    capabilities=list(capabilities),
                    max_attempts=max_attempts,
                    created_at=now or now_utc(),
                    **timeouts,
                )
            )
        await _set_names(conn, slug, list(aliases))
        return await _load_model(conn, slug)


async def get_model(store: Store, slug: str) -> ModelRecord:
    async with store.read() as conn:
        return await _load_model(conn, slug)


async def list_models(store: Store) -> list[ModelRecord]:
    async with store.read() as conn:
        rows = (await conn.execute(t.models.select().order_by(t.models.c.slug))).all()
        return await _model_records(conn, rows, everything=True)


async def update_model(
    store: Store,
    slug: str,
    *,
    aliases: Sequence[str] | msgspec.UnsetType = msgspec.UNSET,
    context_length: int | msgspec.UnsetType | None = msgspec.UNSET,
    capabilities: Sequence[str] | msgspec.UnsetType = msgspec.UNSET,
    max_attempts: int | msgspec.UnsetType | None = msgspec.UNSET,
    first_byte_timeout_ms: int | msgspec.UnsetType | None = msgspec.UNSET,
    idle_timeout_ms: int | msgspec.UnsetType | None = msgspec.UNSET,
    total_timeout_ms: int | msgspec.UnsetType | None = msgspec.UNSET,
) -> ModelRecord:
    """Change some fields; an alias some account's default fallback uses cannot go."""
    values = unset_free(
        {
            "context_length": context_length,
            "capabilities": capabilities,
            "max_attempts": max_attempts,
            "first_byte_timeout_ms": first_byte_timeout_ms,
            "idle_timeout_ms": idle_timeout_ms,
            "total_timeout_ms": total_timeout_ms,
        }
    )
    _in_range(values, ["context_length"], 1, U32_MAX)
    _in_range(values, ["max_attempts"], *MAX_ATTEMPTS)
    _in_range(values, list(TIMEOUT_COLUMNS.values()), *TIMEOUT_MS)
    if "capabilities" in values:
        values["capabilities"] = list(values["capabilities"])
    async with store.transaction() as conn:
        await update(conn, t.models, t.models.c.slug, slug, "model", values=values)
        if not isinstance(aliases, msgspec.UnsetType):
            await _set_names(conn, slug, list(aliases))
            await check_fallbacks_kept(conn, f"model {slug!r}", "aliases")
        return await _load_model(conn, slug)


async def delete_model(store: Store, slug: str) -> None:
    """A model with channels, or one some account's default fallback names, cannot go."""
    async with store.transaction() as conn:
        if await _exists(conn, t.channels.c.model_slug, slug):
            raise Conflict(f"model {slug!r} has channels; delete them first", "slug")
        users = await fallback_users(conn, slug)
        if users:
            raise Conflict(
                f"model {slug!r} is the default fallback of accounts {', '.join(users)}; "
                "change theirs first",
                "slug",
            )
        async with conflict_on_integrity(f"model {slug!r} has channels", "slug"):
            await delete(conn, t.models, t.models.c.slug, slug, "model")


# -- channels -------------------------------------------------------------------------------

_PRICES = ["price_prompt_nano", "price_completion_nano", "price_cached_nano"]


async def _channel_values(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    _in_range(values, ["weight"], 0, U32_MAX)
    _in_range(values, _PRICES, 0, 10**18)
    _in_range(values, list(TIMEOUT_COLUMNS.values()), *TIMEOUT_MS)
    if "model_slug" in values and not await _exists(conn, t.models.c.slug, values["model_slug"]):
        raise Invalid(f"unknown model {values['model_slug']!r}", "model")
    provider = values.get("provider_id")
    if provider is not None and not await _exists(conn, t.providers.c.id, provider):
        raise Invalid(f"unknown provider {provider!r}", "provider")
    if values.get("upstream_model") == "":
        raise Invalid("must not be empty", "upstream_model")
    return values


async def create_channel(
    store: Store,
    channel_id: str,
    *,
    model_slug: str,
    provider_id: str,
    upstream_model: str,
    weight: int = 1,
    price_prompt_nano: int = 0,
    price_completion_nano: int = 0,
    price_cached_nano: int | None = None,
    first_byte_timeout_ms: int | None = None,
    idle_timeout_ms: int | None = None,
    total_timeout_ms: int | None = None,
    enabled: bool = True,
    now: datetime | None = None,
) -> ChannelRecord:
    """`price_cached_nano` defaults to the prompt price: no discount unless one is stated; a
    timeout left None is the model's, else the built-in default."""
    values = {
        "id": channel_id,
        "model_slug": model_slug,
        "provider_id": provider_id,
        "upstream_model": upstream_model,
        "weight": weight,
        "price_prompt_nano": price_prompt_nano,
        "price_completion_nano": price_completion_nano,
        "price_cached_nano": price_prompt_nano if price_cached_nano is None else price_cached_nano,
        "first_byte_timeout_ms": first_byte_timeout_ms,
        "idle_timeout_ms": idle_timeout_ms,
        "total_timeout_ms": total_timeout_ms,
        "enabled": enabled,
        "created_at": now or now_utc(),
    }
    message = f"channel {channel_id!r} already exists"
    async with store.transaction() as conn:
        if await _exists(conn, t.channels.c.id, channel_id):
            raise Conflict(message, "id")
        await _channel_values(conn, values)
        async with conflict_on_integrity(message, "id"):
            await conn.execute(t.channels.insert().values(values))
        row = await fetch(conn, t.channels, t.channels.c.id, channel_id, "channel")
        return to_record(row, ChannelRecord)


async def get_channel(store: Store, channel_id: str) -> ChannelRecord:
    async with store.read() as conn:
        row = await fetch(conn, t.channels, t.channels.c.id, channel_id, "channel")
        return to_record(row, ChannelRecord)


async def list_channels(store: Store, model_slug: str | None = None) -> list[ChannelRecord]:
    query = t.channels.select().order_by(t.channels.c.model_slug, t.channels.c.id)
    if model_slug is not None:
        query = query.where(t.channels.c.model_slug == model_slug)
    async with store.read() as conn:
        return [to_record(r, ChannelRecord) for r in await conn.execute(query)]


async def update_channel(store: Store, channel_id: str, **changes: Any) -> ChannelRecord:
    """Change some of the fields `create_channel` takes; msgspec.UNSET fields are kept."""
    unknown = set(changes) - set(ChannelRecord.__struct_fields__) | {"id", "created_at"}
    if unknown & set(changes):
        raise TypeError(f"cannot change channel fields: {sorted(unknown & set(changes))}")
    values = unset_free(changes)
    async with store.transaction() as conn:
        await fetch(conn, t.channels, t.channels.c.id, channel_id, "channel")
        await _channel_values(conn, values)
        row = await update(conn, t.channels, t.channels.c.id, channel_id, "channel", values=values)
        if {"model_slug", "provider_id"} & set(values):
            await check_fallbacks_kept(conn, f"channel {channel_id!r}", "id")
        return to_record(row, ChannelRecord)


async def delete_channel(store: Store, channel_id: str) -> None:
    """A channel that alone serves the provider some account's default fallback pins cannot
    go."""
    async with store.transaction() as conn:
        await delete(conn, t.channels, t.channels.c.id, channel_id, "channel")
        await check_fallbacks_kept(conn, f"channel {channel_id!r}", "id")
