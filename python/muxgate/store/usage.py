"""Usage records and the charges they carry, written together and idempotently.

A batch of events is one transaction: new records are inserted (replays of a request id are
skipped by the primary key), then one charge per new record with a cost, split bonus-first
against the balances read under the account locks, then the insurance claims of the new
records and their redacted cases (see `claims` and `cases`). Nothing here is one round trip
per row."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

import msgspec
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store import settings
from muxgate.store import tables as t
from muxgate.store.bulk import add_to_sums, insert_rows
from muxgate.store.cases import store_cases
from muxgate.store.claims import ClaimSource, book_in
from muxgate.store.keys import spent
from muxgate.store.ledger import add_to_balances, balances, lock_accounts, now_utc, split_charge
from muxgate.store.store import Store
from muxgate.wire.usage import UsageEvent

# Verdicts and cases are booked into their own tables, never kept with the usage metadata.
_EVENT_FIELDS = [
    f for f in UsageEvent.__struct_fields__ if f not in {"created_ms", "insurance", "case"}
]


class RecordResult(msgspec.Struct, frozen=True, kw_only=True):
    inserted: int
    """New usage records; replayed events are not counted."""
    duplicates: int
    charged_nano: int
    credited_nano: int = 0
    """Insurance credit booked for the new records."""
    claims: int = 0
    cases: int = 0
    blocked_accounts: list[str]
    """Accounts whose total balance crossed from above zero to zero or below."""
    unblocked_accounts: list[str] = []
    """Accounts whose insurance credit took the total balance from zero or below above zero."""
    exhausted_keys: list[str]
    """Keys whose charges reached their credit limit in this batch."""
    unknown_accounts: list[str]
    """Accounts named by events but absent from the store: recorded, not charged."""


_COLUMNS = ["created_at", *_EVENT_FIELDS]
_CHARGE_COLUMNS = [
    "account_id",
    "kind",
    "purchased_nano",
    "bonus_nano",
    "request_id",
    "key_id",
    "note",
    "created_at",
]


async def _insert_new(conn: AsyncConnection, events: list[UsageEvent]) -> set[str]:
    """Insert the records; the request ids that were new.

    The one bulk write of the metering path, so it bypasses SQLAlchemy's per-row parameter
    processing: ids already present are read first (the caller holds the account locks, and
    the insert still ignores conflicts), then the new rows go to the driver's executemany."""
    u = t.usage_records
    ids = [e.request_id for e in events]
    seen = set(
        (await conn.execute(select(u.c.request_id).where(u.c.request_id.in_(ids)))).scalars()
    )
    fresh = [e for e in events if e.request_id not in seen]
    if not fresh:
        return set()
    sqlite_naive = conn.dialect.name == "sqlite"
    rows = []
    for e in fresh:
        created = datetime.fromtimestamp(e.created_ms / 1000, UTC)
        stamp = created.replace(tzinfo=None) if sqlite_naive else created
        rows.append((stamp, *(_column(e, name) for name in _EVENT_FIELDS)))
    await insert_rows(conn, "usage_records", _COLUMNS, rows)
    return {e.request_id for e in fresh}


async def record_usage(
    store: Store, events: Sequence[UsageEvent], now: datetime | None = None
) -> RecordResult:
    """Insert new usage records with their charges, insurance claims and cases in one
    transaction; replaying events inserts, charges and credits nothing twice."""
    now = now or now_utc()
    unique: dict[str, UsageEvent] = {}
    for event in events:
        unique.setdefault(event.request_id, event)
    if not unique:
        return RecordResult(
            inserted=0,
            duplicates=0,
            charged_nano=0,
            blocked_accounts=[],
            exhausted_keys=[],
            unknown_accounts=[],
        )
    async with store.transaction() as conn:
        # Lock first: the balances read below decide the bonus/purchased split.
        costly = [e for e in unique.values() if e.cost_nano_usd > 0]
        claiming = [e for e in unique.values() if e.insurance]
        # Accounts this batch writes for: charges, credits, cases (a free request sampled for
        # the judge has only a case).
        involved = [
            e for e in unique.values() if e.cost_nano_usd > 0 or e.insurance or e.case is not None
        ]
        known = await lock_accounts(conn, {e.account_id for e in involved})
        new_ids = await _insert_new(conn, list(unique.values()))
        charges = [e for e in costly if e.request_id in new_ids and e.account_id in known]
        charges = await _uncharged(conn, charges)
        claims = [
            ClaimSource.of(e) for e in claiming if e.request_id in new_ids and e.account_id in known
        ]
        unknown = sorted({e.account_id for e in involved if e.request_id in new_ids} - known)
        before = await balances(
            conn, {e.account_id for e in charges} | {c.account_id for c in claims}
        )
        limited = await _limited_keys(conn, {e.key_id for e in charges})
        spend_before = await spent(conn, list(limited))
        bonus = {a: b.bonus_nano for a, b in before.items()}
        created = now.replace(tzinfo=None) if conn.dialect.name == "sqlite" else now
        rows: list[tuple[Any, ...]] = []
        charged: dict[str, int] = {}
        by_key: dict[str, int] = {}
        for event in charges:
            cost = event.cost_nano_usd
            purchased_part, bonus_part = split_charge(cost, bonus[event.account_id])
            bonus[event.account_id] += bonus_part
            charged[event.account_id] = charged.get(event.account_id, 0) + cost
            by_key[event.key_id] = by_key.get(event.key_id, 0) + cost
            rows.append(
                (
                    event.account_id,
                    "charge",
                    purchased_part,
                    bonus_part,
                    event.request_id,
                    event.key_id,
                    "",
                    created,
                )
            )
        if rows:
            await insert_rows(conn, "ledger_entries", _CHARGE_COLUMNS, rows)
            await add_to_balances(conn, [(r[0], r[2], r[3]) for r in rows])
            await add_to_sums(
                conn, "key_spend", "key_id", ["spent_nano"], {k: (v,) for k, v in by_key.items()}
            )
        booked = await book_in(conn, claims, now)
        fresh = [e for e in involved if e.request_id in new_ids and e.account_id in known]
        cases = await store_cases(conn, fresh, booked.credits)
        after = {
            a: b.total_nano - charged.get(a, 0) + booked.by_account.get(a, 0)
            for a, b in before.items()
        }
        blocked = sorted(a for a, b in before.items() if b.total_nano > 0 >= after[a])
        unblocked = sorted(a for a, b in before.items() if b.total_nano <= 0 < after[a])
        exhausted = sorted(
            k
            for k, limit in limited.items()
            if k in by_key and spend_before.get(k, 0) < limit <= spend_before.get(k, 0) + by_key[k]
        )
    return RecordResult(
        inserted=len(new_ids),
        duplicates=len(events) - len(new_ids),
        charged_nano=sum(charged.values()),
        credited_nano=booked.credited_nano,
        claims=booked.claims,
        cases=cases,
        blocked_accounts=blocked,
        unblocked_accounts=unblocked,
        exhausted_keys=exhausted,
        unknown_accounts=unknown,
    )


async def _uncharged(conn: AsyncConnection, events: list[UsageEvent]) -> list[UsageEvent]:
    """Drop events already charged: a charge can outlive its usage record (purged, then the
    event replayed). The caller holds the accounts' locks, so nothing charges them meanwhile."""
    if not events:
        return events
    le = t.ledger_entries
    query = select(le.c.request_id).where(
        le.c.kind == "charge", le.c.request_id.in_([e.request_id for e in events])
    )
    charged = set((await conn.execute(query)).scalars())
    return [e for e in events if e.request_id not in charged]


async def _limited_keys(conn: AsyncConnection, key_ids: set[str]) -> dict[str, int]:
    if not key_ids:
        return {}
    k = t.api_keys
    rows = await conn.execute(
        select(k.c.id, k.c.credit_limit_nano).where(
            k.c.id.in_(sorted(key_ids)), k.c.credit_limit_nano.is_not(None)
        )
    )
    return {key_id: int(limit) for key_id, limit in rows}


async def purge_usage(store: Store, older_than: datetime | None = None) -> int:
    """Delete usage records and insurance cases created before `older_than` (default: the
    retention setting); the count of usage records deleted. Claims stay, like the ledger."""
    async with store.transaction() as conn:
        if older_than is None:
            days = (await settings.load(conn)).usage_retention_days
            older_than = now_utc() - timedelta(days=days)
        await conn.execute(
            delete(t.insurance_cases).where(t.insurance_cases.c.created_at < older_than)
        )
        result = await conn.execute(
            delete(t.usage_records).where(t.usage_records.c.created_at < older_than)
        )
        return int(result.rowcount)


P50_WINDOW = timedelta(hours=1)
P50_MIN_SAMPLES = 20
_P50_MAX_SAMPLES = 1000


async def ttft_medians(conn: AsyncConnection, now: datetime) -> dict[str, float]:
    """Each model's median time to first token over its successful streamed requests of the
    last hour (the newest 1000 at most), for models with at least 20 of them. Streamed only:
    a JSON answer's first byte comes when the whole answer is done, which is not latency."""
    u = t.usage_records
    rank = (
        func.row_number()
        .over(partition_by=u.c.model, order_by=(u.c.created_at.desc(), u.c.request_id))
        .label("rank")
    )
    recent = (
        select(u.c.model, u.c.ttft_ms, rank)
        .where(
            u.c.created_at >= now - P50_WINDOW,
            u.c.status == "ok",
            u.c.stream,
            u.c.ttft_ms.is_not(None),
        )
        .subquery()
    )
    query = select(recent.c.model, recent.c.ttft_ms).where(recent.c.rank <= _P50_MAX_SAMPLES)
    samples: dict[str, list[float]] = {}
    for model, ttft in await conn.execute(query):
        samples.setdefault(model, []).append(float(ttft))
    return {m: median(v) for m, v in samples.items() if len(v) >= P50_MIN_SAMPLES}


async def usage_count(store: Store) -> int:
    async with store.read() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(t.usage_records))).scalar_one()
        )


def _column(event: UsageEvent, name: str) -> Any:
    value = getattr(event, name)
    return msgspec.json.encode(value).decode() if name == "failovers" else value


def _event(row: Any) -> UsageEvent:
    values = {name: row._mapping[name] for name in _EVENT_FIELDS}
    values["failovers"] = msgspec.json.decode(values["failovers"] or "[]")
    values["created_ms"] = int(row.created_at.timestamp() * 1000)
    return msgspec.convert(values, UsageEvent)


async def get_usage(
    store: Store, request_id: str, account_id: str | None = None
) -> UsageEvent | None:
    """One request's usage record; with `account_id`, only if it belongs to that account."""
    u = t.usage_records
    query = select(u).where(u.c.request_id == request_id)
    if account_id is not None:
        query = query.where(u.c.account_id == account_id)
    async with store.read() as conn:
        row = (await conn.execute(query)).one_or_none()
    return None if row is None else _event(row)


async def list_usage(store: Store, limit: int = 10_000) -> list[UsageEvent]:
    """The newest usage records, newest first."""
    u = t.usage_records
    query = select(u).order_by(u.c.created_at.desc()).limit(limit)
    async with store.read() as conn:
        return [_event(row) for row in await conn.execute(query)]
