"""Accounts: who holds credit. New accounts get the trial grant the settings say."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import Row, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store import settings
from muxgate.store import tables as t
from muxgate.store.errors import Conflict
from muxgate.store.fallbacks import check_fallback
from muxgate.store.ledger import Balance, balances, insert_entry, now_utc
from muxgate.store.rows import conflict_on_integrity, fetch, to_record, unset_free, update
from muxgate.store.store import Store


class AccountRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    blocked: bool
    """Blocked by an operator; see `effectively_blocked` for the rule the gateway applies."""
    retain_content: bool = False
    """Opted into keeping redacted insurance cases (off unless the account turns it on)."""
    default_fallback: str | None = None
    """The model (`model` or `model:provider`) tried when every channel of a requested model
    failed and the request names no fallback of its own."""
    created_at: datetime
    balance: Balance = Balance()

    @property
    def effectively_blocked(self) -> bool:
        return self.blocked or self.balance.total_nano <= 0


async def _with_balances(
    conn: AsyncConnection, rows: Sequence[Row[Any]], *, everything: bool = False
) -> list[AccountRecord]:
    records = [to_record(r, AccountRecord) for r in rows]
    found = await balances(conn, None if everything else [r.id for r in records])
    return [msgspec.structs.replace(r, balance=found.get(r.id, Balance())) for r in records]


async def load_account(conn: AsyncConnection, account_id: str) -> AccountRecord:
    row = await fetch(conn, t.accounts, t.accounts.c.id, account_id, "account")
    return (await _with_balances(conn, [row]))[0]


async def create_in(
    conn: AsyncConnection,
    account_id: str,
    *,
    name: str,
    blocked: bool,
    now: datetime,
    default_fallback: str | None = None,
) -> None:
    """Insert the account and its trial grant inside the caller's transaction."""
    if (await conn.execute(select(exists().where(t.accounts.c.id == account_id)))).scalar():
        raise Conflict(f"account {account_id!r} already exists", "id")
    if default_fallback is not None:
        await check_fallback(conn, default_fallback, "default_fallback")
    async with conflict_on_integrity(f"account {account_id!r} already exists", "id"):
        await conn.execute(
            t.accounts.insert().values(
                id=account_id,
                name=name,
                blocked=blocked,
                default_fallback=default_fallback,
                created_at=now,
            )
        )
    config = await settings.load(conn)
    if config.trial_credit_nano > 0:
        await insert_entry(
            conn,
            account_id,
            "trial",
            bonus_nano=config.trial_credit_nano,
            expires_at=now + timedelta(days=config.trial_days) if config.trial_days else None,
            note="trial credit",
            now=now,
        )


async def create_account(
    store: Store,
    account_id: str,
    *,
    name: str = "",
    blocked: bool = False,
    default_fallback: str | None = None,
    now: datetime | None = None,
) -> AccountRecord:
    async with store.transaction() as conn:
        await create_in(
            conn,
            account_id,
            name=name,
            blocked=blocked,
            now=now or now_utc(),
            default_fallback=default_fallback,
        )
        return await load_account(conn, account_id)


async def get_account(store: Store, account_id: str) -> AccountRecord:
    async with store.read() as conn:
        return await load_account(conn, account_id)


async def list_accounts(store: Store) -> list[AccountRecord]:
    async with store.read() as conn:
        rows = (await conn.execute(t.accounts.select().order_by(t.accounts.c.id))).all()
        return await _with_balances(conn, rows, everything=True)


async def update_account(
    store: Store,
    account_id: str,
    *,
    name: str | msgspec.UnsetType = msgspec.UNSET,
    blocked: bool | msgspec.UnsetType = msgspec.UNSET,
    retain_content: bool | msgspec.UnsetType = msgspec.UNSET,
    default_fallback: str | msgspec.UnsetType | None = msgspec.UNSET,
) -> AccountRecord:
    """Change some fields; a default fallback must name a model (see `check_fallback`), None
    clears it."""
    values = unset_free(
        {
            "name": name,
            "blocked": blocked,
            "retain_content": retain_content,
            "default_fallback": default_fallback,
        }
    )
    async with store.transaction() as conn:
        if isinstance(default_fallback, str):
            await check_fallback(conn, default_fallback, "default_fallback")
        await update(conn, t.accounts, t.accounts.c.id, account_id, "account", values=values)
        return await load_account(conn, account_id)


async def delete_account(store: Store, account_id: str) -> None:
    """Only an account without history can go: the ledger is append-only, so an account that
    has entries or keys is blocked instead. One a rate-limit policy names stays too."""
    async with store.transaction() as conn:
        await fetch(conn, t.accounts, t.accounts.c.id, account_id, "account")
        for table, what in ((t.api_keys, "keys"), (t.ledger_entries, "ledger entries")):
            used = select(exists().where(table.c.account_id == account_id))
            if (await conn.execute(used)).scalar():
                raise Conflict(f"account {account_id!r} has {what}; block it instead", "id")
        p = t.rate_limit_policies
        named = [
            ident
            for ident, subjects in await conn.execute(
                select(p.c.id, p.c.subjects).where(p.c.applies_to == "account").order_by(p.c.id)
            )
            if account_id in subjects
        ]
        if named:
            # Dropping it from their subjects could leave a policy naming no one, which would
            # then limit every account.
            listed = ", ".join(named)
            raise Conflict(f"account {account_id!r} is named by rate-limit policies {listed}", "id")
        await conn.execute(t.accounts.delete().where(t.accounts.c.id == account_id))
