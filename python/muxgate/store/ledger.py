"""The ledger: append-only entries in two buckets, purchased and bonus; balances are sums.

Bonus is spent first and never goes below zero; purchased may go negative (a request already
served is charged in full). Bonus grants with `expires_at` are consumed earliest-expiring
first, which is what lets `expire_bonus` tell how much of an expired grant is still unspent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import Row, and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store import tables as t
from muxgate.store.bulk import add_to_sums
from muxgate.store.errors import Invalid, NotFound
from muxgate.store.rows import to_record
from muxgate.store.store import Store

LedgerKind = Literal["trial", "top_up", "charge", "refund", "adjustment", "insurance", "expiry"]
Bucket = Literal["purchased", "bonus"]
# Kinds an operator (or the insurance payer) writes directly; charges and expiries are only
# ever derived from usage and time.
MANUAL_KINDS: frozenset[str] = frozenset({"top_up", "refund", "adjustment", "insurance", "trial"})


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    purchased_nano: int = 0
    bonus_nano: int = 0

    @property
    def total_nano(self) -> int:
        return self.purchased_nano + self.bonus_nano


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    account_id: str
    kind: LedgerKind
    purchased_nano: int
    bonus_nano: int
    request_id: str | None
    key_id: str | None
    grant_id: int | None
    expires_at: datetime | None
    note: str
    created_at: datetime


class ExpiryResult(msgspec.Struct, frozen=True, kw_only=True):
    entries: int
    expired_nano: int
    blocked_accounts: list[str]
    """Accounts whose total balance went from above zero to zero or below."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def split_charge(cost_nano: int, bonus_balance: int) -> tuple[int, int]:
    """(purchased, bonus) parts of a charge, both <= 0: bonus first, the rest from purchased."""
    from_bonus = min(cost_nano, max(bonus_balance, 0))
    return -(cost_nano - from_bonus), -from_bonus


def _entry(row: Row[Any]) -> LedgerEntry:
    return to_record(row, LedgerEntry)


async def lock_accounts(conn: AsyncConnection, account_ids: Iterable[str]) -> set[str]:
    """The accounts among `account_ids` that exist, locked against concurrent ledger writers
    (row locks on PostgreSQL; SQLite writers already hold the database write lock)."""
    ids = sorted(set(account_ids))
    if not ids:
        return set()
    query = select(t.accounts.c.id).where(t.accounts.c.id.in_(ids)).order_by(t.accounts.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return set((await conn.execute(query)).scalars())


async def balances(conn: AsyncConnection, account_ids: Iterable[str] | None) -> dict[str, Balance]:
    """Balances of the given accounts (zero for accounts with no entries); `None` means every
    account with entries. Read from the running sums, one row per account."""
    ab = t.account_balances
    query = select(ab.c.account_id, ab.c.purchased_nano, ab.c.bonus_nano)
    ids: list[str] = []
    if account_ids is not None:
        ids = sorted(set(account_ids))
        if not ids:
            return {}
        query = query.where(ab.c.account_id.in_(ids))
    rows = await conn.execute(query)
    found = {a: Balance(purchased_nano=int(p), bonus_nano=int(b)) for a, p, b in rows}
    if account_ids is None:
        return found
    return {a: found.get(a, Balance()) for a in ids}


async def add_to_balances(conn: AsyncConnection, amounts: Iterable[tuple[str, int, int]]) -> None:
    """Add new entries' (account, purchased, bonus) amounts to the running balances; called in
    the transaction that inserts the entries, for exactly the entries inserted."""
    deltas: dict[str, tuple[int, int]] = {}
    for account, purchased, bonus in amounts:
        p, b = deltas.get(account, (0, 0))
        deltas[account] = (p + purchased, b + bonus)
    await add_to_sums(
        conn, "account_balances", "account_id", ["purchased_nano", "bonus_nano"], deltas
    )


async def account_exists(conn: AsyncConnection, account_id: str) -> bool:
    query = select(exists().where(t.accounts.c.id == account_id))
    return bool((await conn.execute(query)).scalar())


async def balance(store: Store, account_id: str) -> Balance:
    async with store.read() as conn:
        if not await account_exists(conn, account_id):
            raise NotFound("account", account_id)
        return (await balances(conn, [account_id]))[account_id]


async def insert_entry(
    conn: AsyncConnection,
    account_id: str,
    kind: LedgerKind,
    *,
    purchased_nano: int = 0,
    bonus_nano: int = 0,
    request_id: str | None = None,
    expires_at: datetime | None = None,
    note: str = "",
    now: datetime,
) -> LedgerEntry:
    values = {
        "account_id": account_id,
        "kind": kind,
        "purchased_nano": purchased_nano,
        "bonus_nano": bonus_nano,
        "request_id": request_id,
        "expires_at": expires_at,
        "note": note,
        "created_at": now,
    }
    row = (
        await conn.execute(t.ledger_entries.insert().values(values).returning(t.ledger_entries))
    ).one()
    await add_to_balances(conn, [(account_id, purchased_nano, bonus_nano)])
    return _entry(row)


async def add_entry(
    store: Store,
    account_id: str,
    kind: LedgerKind,
    amount_nano: int,
    *,
    bucket: Bucket = "purchased",
    expires_at: datetime | None = None,
    request_id: str | None = None,
    note: str = "",
    now: datetime | None = None,
) -> LedgerEntry:
    """An operator's entry (top-up, refund, adjustment, insurance credit, trial grant)."""
    now = now or now_utc()
    if kind not in MANUAL_KINDS:
        raise Invalid(f"{kind} entries are written by the ledger itself", "kind")
    if kind == "adjustment":
        if amount_nano == 0:
            raise Invalid("an adjustment must not be zero", "amount")
    elif amount_nano <= 0:
        raise Invalid(f"a {kind} must be positive", "amount")
    if kind == "top_up" and bucket != "purchased":
        raise Invalid("a top-up buys purchased credit", "bucket")
    if kind == "trial" and bucket != "bonus":
        raise Invalid("a trial grant is bonus credit", "bucket")
    if expires_at is not None:
        if bucket != "bonus" or amount_nano <= 0:
            raise Invalid("only a bonus grant can expire", "expires_at")
        if expires_at <= now:
            raise Invalid("must be in the future", "expires_at")
    async with store.transaction() as conn:
        if not await lock_accounts(conn, [account_id]):
            raise NotFound("account", account_id)
        if bucket == "bonus" and amount_nano < 0:
            current = (await balances(conn, [account_id]))[account_id]
            if current.bonus_nano + amount_nano < 0:
                raise Invalid("would take the bonus balance below zero", "amount")
        return await insert_entry(
            conn,
            account_id,
            kind,
            purchased_nano=amount_nano if bucket == "purchased" else 0,
            bonus_nano=amount_nano if bucket == "bonus" else 0,
            request_id=request_id,
            expires_at=expires_at,
            note=note,
            now=now,
        )


async def list_entries(
    store: Store, account_id: str, *, limit: int = 100, before_id: int | None = None
) -> list[LedgerEntry]:
    """Newest first; page with `before_id` (the smallest id of the previous page)."""
    le = t.ledger_entries
    query = select(le).where(le.c.account_id == account_id)
    if before_id is not None:
        query = query.where(le.c.id < before_id)
    async with store.read() as conn:
        if not await account_exists(conn, account_id):
            raise NotFound("account", account_id)
        rows = await conn.execute(query.order_by(le.c.id.desc()).limit(limit))
        return [_entry(r) for r in rows]


class _Grant(msgspec.Struct, frozen=True):
    id: int
    account_id: str
    amount: int
    expires_at: datetime | None

    def order(self) -> tuple[int, datetime, int]:
        # Grants that never expire are consumed last.
        if self.expires_at is None:
            return (1, datetime.max.replace(tzinfo=UTC), self.id)
        return (0, self.expires_at, self.id)


def unspent(grant: _Grant, bonus_balance: int, live: Sequence[_Grant]) -> int:
    """What is left of `grant`: the balance not held by live grants that expire after it,
    clamped to [0, grant.amount]."""
    later = sum(g.amount for g in live if g.order() > grant.order())
    return max(0, min(bonus_balance - later, grant.amount))


async def expire_bonus(store: Store, now: datetime | None = None) -> ExpiryResult:
    """Write one `expiry` entry per bonus grant whose time has come, for its unspent part.
    Idempotent: a grant that already has its expiry entry is never expired again."""
    now = now or now_utc()
    le = t.ledger_entries
    done = le.alias("done")
    unexpired = ~exists().where(done.c.grant_id == le.c.id)
    is_grant = and_(le.c.bonus_nano > 0, le.c.kind != "expiry", unexpired)
    due = select(le.c.account_id).where(
        is_grant, le.c.expires_at.is_not(None), le.c.expires_at <= now
    )
    entries = expired_total = 0
    blocked: list[str] = []
    async with store.transaction() as conn:
        accounts = sorted(set((await conn.execute(due.distinct())).scalars()))
        if not accounts:
            return ExpiryResult(entries=0, expired_nano=0, blocked_accounts=[])
        await lock_accounts(conn, accounts)
        before = await balances(conn, accounts)
        rows = await conn.execute(
            select(le.c.id, le.c.account_id, le.c.bonus_nano, le.c.expires_at).where(
                is_grant, le.c.account_id.in_(accounts)
            )
        )
        live: dict[str, list[_Grant]] = {}
        for r in rows:
            live.setdefault(r.account_id, []).append(_Grant(*r))
        new_rows: list[dict[str, object]] = []
        written_off: list[tuple[str, int, int]] = []
        for account in accounts:
            grants = sorted(live.get(account, []), key=_Grant.order)
            bonus = before[account].bonus_nano
            for grant in grants:
                if grant.expires_at is None or grant.expires_at > now:
                    continue
                amount = unspent(grant, bonus, grants)
                grants = [g for g in grants if g.id != grant.id]
                bonus -= amount
                expired_total += amount
                written_off.append((account, 0, -amount))
                new_rows.append(
                    {
                        "account_id": account,
                        "kind": "expiry",
                        "purchased_nano": 0,
                        "bonus_nano": -amount,
                        "request_id": None,
                        "grant_id": grant.id,
                        "expires_at": None,
                        "note": f"bonus grant {grant.id} expired",
                        "created_at": now,
                    }
                )
            remaining = before[account].purchased_nano + bonus
            if before[account].total_nano > 0 >= remaining:
                blocked.append(account)
        if new_rows:
            await conn.execute(t.ledger_entries.insert(), new_rows)
            await add_to_balances(conn, written_off)
        entries = len(new_rows)
    return ExpiryResult(entries=entries, expired_nano=expired_total, blocked_accounts=blocked)
