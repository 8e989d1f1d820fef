"""Insurance claims: the engine's verdicts booked as credit, and the account's view of them.

The engine decides a verdict and its credit when a request ends (share of the cost, per-request
cap, minimum cost); booking adds what needs the ledger: the rule's cap per account and UTC day,
and idempotency per (request, rule). Each booked claim is a row here, and, when it earned
anything, an `insurance` ledger entry in the bonus bucket (spent first, never expiring). A claim
capped to 0 is still recorded, so the account can see that it triggered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store import tables as t
from muxgate.store.buckets import utc_bucket
from muxgate.store.cases import case_verdict, mark_judged
from muxgate.store.ledger import add_to_balances, balances, lock_accounts, now_utc
from muxgate.store.rows import to_record
from muxgate.store.store import Store
from muxgate.wire.usage import UsageEvent, Verdict


class ClaimSource(msgspec.Struct, frozen=True, kw_only=True):
    """A finished request and the verdicts it earned: what booking needs to know."""

    request_id: str
    account_id: str
    key_id: str
    model: str
    channel_id: str | None
    created_at: datetime
    """When the request was made: the day its claims count against the daily cap."""
    verdicts: list[Verdict]

    @classmethod
    def of(cls, event: UsageEvent) -> ClaimSource:
        return cls(
            request_id=event.request_id,
            account_id=event.account_id,
            key_id=event.key_id,
            model=event.model,
            channel_id=event.channel_id,
            created_at=datetime.fromtimestamp(event.created_ms / 1000, UTC),
            verdicts=list(event.insurance),
        )


class Booked(msgspec.Struct, kw_only=True):
    """What one booking wrote."""

    claims: int = 0
    credited_nano: int = 0
    by_account: dict[str, int] = {}
    """Credit per account."""
    credits: dict[tuple[str, str], int] = {}
    """Credit per (request id, rule id) booked now."""


class BookResult(msgspec.Struct, frozen=True, kw_only=True):
    claims: int
    """New claims; verdicts already booked are not counted."""
    credited_nano: int
    unblocked_accounts: list[str]
    """Accounts whose total balance went from zero or below to above zero."""
    unknown_accounts: list[str]


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """A booked claim, with what its usage record still says about the request (None once
    that record is purged)."""

    id: int
    request_id: str
    rule_id: str
    account_id: str
    key_id: str
    model: str
    channel_id: str | None
    trigger: str
    reason: str
    requested_nano: int
    credit_nano: int
    created_at: datetime
    booked_at: datetime
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_nano_usd: int | None = None
    ttft_ms: float | None = None
    output_tokens_per_second: float | None = None
    finish_reason: str | None = None


def _day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def _already_booked(
    conn: AsyncConnection, sources: Sequence[ClaimSource]
) -> set[tuple[str, str]]:
    c = t.insurance_claims
    ids = sorted({s.request_id for s in sources})
    rows = await conn.execute(select(c.c.request_id, c.c.rule_id).where(c.c.request_id.in_(ids)))
    return {(r, rule) for r, rule in rows}


async def _daily_caps(conn: AsyncConnection, rule_ids: Iterable[str]) -> dict[str, int]:
    """Caps per account and day of the rules that still exist and have one; a deleted rule's
    verdict is booked without a daily cap."""
    r = t.insurance_rules
    query = select(r.c.id, r.c.cap_per_day_nano).where(
        r.c.id.in_(sorted(set(rule_ids))), r.c.cap_per_day_nano.is_not(None)
    )
    return {ident: int(cap) for ident, cap in await conn.execute(query)}


async def _used_today(
    conn: AsyncConnection, keys: set[tuple[str, str, str]], first: datetime, last: datetime
) -> dict[tuple[str, str, str], int]:
    """Credit already booked per (account, rule, UTC day) among `keys`, in one grouped query."""
    if not keys:
        return {}
    c = t.insurance_claims
    day = utc_bucket(conn.dialect.name, c.c.created_at, "1d").label("day")
    pairs = sorted({(a, r) for a, r, _ in keys})
    query = (
        select(c.c.account_id, c.c.rule_id, day, func.sum(c.c.credit_nano))
        .where(
            tuple_(c.c.account_id, c.c.rule_id).in_(pairs),
            c.c.created_at >= _day_start(first),
            c.c.created_at < _day_start(last) + timedelta(days=1),
        )
        .group_by(c.c.account_id, c.c.rule_id, day)
    )
    return {(a, r, d): int(total) for a, r, d, total in await conn.execute(query)}


async def book_in(conn: AsyncConnection, sources: Sequence[ClaimSource], now: datetime) -> Booked:
    """Book the verdicts of `sources` inside the caller's transaction. The caller has locked
    the accounts (`lock_accounts`) and passes only accounts that exist."""
    booked = Booked(by_account={}, credits={})
    sources = [s for s in sources if s.verdicts]
    if not sources:
        return booked
    done = await _already_booked(conn, sources)
    caps = await _daily_caps(conn, (v.rule_id for s in sources for v in s.verdicts))
    capped = {
        (s.account_id, v.rule_id, s.created_at.astimezone(UTC).date().isoformat())
        for s in sources
        for v in s.verdicts
        if v.rule_id in caps
    }
    times = [s.created_at for s in sources]
    used = await _used_today(conn, capped, min(times), max(times))
    claims: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for source in sources:
        day = source.created_at.astimezone(UTC).date().isoformat()
        for verdict in source.verdicts:
            if (source.request_id, verdict.rule_id) in done:
                continue
            done.add((source.request_id, verdict.rule_id))
            credit = max(verdict.credit_nano, 0)
            cap = caps.get(verdict.rule_id)
            if cap is not None:
                spent = used.get((source.account_id, verdict.rule_id, day), 0)
                credit = min(credit, max(cap - spent, 0))
                used[(source.account_id, verdict.rule_id, day)] = spent + credit
            claims.append(
                {
                    "request_id": source.request_id,
                    "rule_id": verdict.rule_id,
                    "account_id": source.account_id,
                    "key_id": source.key_id,
                    "model": source.model,
                    "channel_id": source.channel_id,
                    "trigger": verdict.trigger,
                    "reason": verdict.reason,
                    "requested_nano": verdict.credit_nano,
                    "credit_nano": credit,
                    "created_at": source.created_at,
                    "booked_at": now,
                }
            )
            booked.credits[(source.request_id, verdict.rule_id)] = credit
            if credit:
                booked.credited_nano += credit
                booked.by_account[source.account_id] = (
                    booked.by_account.get(source.account_id, 0) + credit
                )
                entries.append(
                    {
                        "account_id": source.account_id,
                        "kind": "insurance",
                        "purchased_nano": 0,
                        "bonus_nano": credit,
                        "request_id": source.request_id,
                        "key_id": source.key_id,
                        "grant_id": None,
                        "expires_at": None,
                        "note": verdict.rule_id,
                        "created_at": now,
                    }
                )
    if claims:
        await conn.execute(t.insurance_claims.insert(), claims)
    if entries:
        await conn.execute(t.ledger_entries.insert(), entries)
        await add_to_balances(conn, [(e["account_id"], 0, e["bonus_nano"]) for e in entries])
    booked.claims = len(claims)
    return booked


async def book_claims(
    store: Store,
    sources: Sequence[ClaimSource],
    now: datetime | None = None,
    outcomes: dict[str, list[dict[str, Any]]] | None = None,
) -> BookResult:
    """Book verdicts that arrive after their request was metered (the hallucination judge):
    the same caps and the same idempotency per (request, rule) as booking with the usage.
    The requests' cases are marked judged, with the judges' `outcomes` per request when given
    (an account deleted meanwhile gets no claim, but its case is no longer waiting)."""
    now = now or now_utc()
    async with store.transaction() as conn:
        known = await lock_accounts(conn, {s.account_id for s in sources})
        mine = [s for s in sources if s.account_id in known]
        before = await balances(conn, {s.account_id for s in mine if s.verdicts})
        booked = await book_in(conn, mine, now)
        verdicts = {
            s.request_id: [
                case_verdict(v, booked.credits[(s.request_id, v.rule_id)])
                for v in s.verdicts
                if (s.request_id, v.rule_id) in booked.credits
            ]
            for s in mine
        }
        await mark_judged(conn, [s.request_id for s in sources], verdicts, now, outcomes)
    unblocked = sorted(
        a
        for a, credit in booked.by_account.items()
        if before[a].total_nano <= 0 < before[a].total_nano + credit
    )
    return BookResult(
        claims=booked.claims,
        credited_nano=booked.credited_nano,
        unblocked_accounts=unblocked,
        unknown_accounts=sorted({s.account_id for s in sources} - known),
    )


async def credited(store: Store, request_id: str) -> int:
    """What the claims of one request have credited so far."""
    c = t.insurance_claims
    query = select(func.coalesce(func.sum(c.c.credit_nano), 0)).where(c.c.request_id == request_id)
    async with store.read() as conn:
        return int((await conn.execute(query)).scalar_one())


def _claims_query(account_id: str) -> Any:
    c = t.insurance_claims
    u = t.usage_records
    return (
        select(
            c,
            u.c.prompt_tokens,
            u.c.completion_tokens,
            u.c.cost_nano_usd,
            u.c.ttft_ms,
            u.c.output_tokens_per_second,
            u.c.finish_reason,
        )
        .select_from(c.outerjoin(u, u.c.request_id == c.c.request_id))
        .where(c.c.account_id == account_id)
    )


async def list_claims(
    store: Store,
    account_id: str,
    *,
    starting_at: datetime,
    ending_at: datetime,
    trigger: str | None = None,
    model: str | None = None,
    limit: int = 100,
    after: tuple[datetime, int] | None = None,
) -> list[Claim]:
    """The account's claims for requests made in `[starting_at, ending_at)`, newest first;
    `after` continues from the (created_at, id) of the last claim of the previous page."""
    c = t.insurance_claims
    query = _claims_query(account_id).where(
        c.c.created_at >= starting_at, c.c.created_at < ending_at
    )
    if trigger is not None:
        query = query.where(c.c.trigger == trigger)
    if model is not None:
        query = query.where(c.c.model == model)
    if after is not None:
        stamp, ident = after
        query = query.where(
            or_(c.c.created_at < stamp, and_(c.c.created_at == stamp, c.c.id < ident))
        )
    query = query.order_by(c.c.created_at.desc(), c.c.id.desc()).limit(limit)
    async with store.read() as conn:
        return [to_record(r, Claim) for r in await conn.execute(query)]


async def request_claims(store: Store, request_id: str, account_id: str) -> list[Claim]:
    """The claims of one request of the account, in booking order."""
    c = t.insurance_claims
    query = _claims_query(account_id).where(c.c.request_id == request_id).order_by(c.c.id)
    async with store.read() as conn:
        return [to_record(r, Claim) for r in await conn.execute(query)]


class ClaimGroup(msgspec.Struct, frozen=True, kw_only=True):
    """Claims and credit of one (UTC day, trigger, model)."""

    day: str
    trigger: str
    model: str
    count: int
    credit_nano: int


async def claim_groups(
    store: Store,
    account_id: str,
    *,
    starting_at: datetime,
    ending_at: datetime,
    trigger: str | None = None,
    model: str | None = None,
) -> list[ClaimGroup]:
    """Count and credit per UTC day, trigger and model, in one grouped query."""
    c = t.insurance_claims
    day = utc_bucket(store.dialect, c.c.created_at, "1d").label("day")
    query = (
        select(
            day,
            c.c.trigger,
            c.c.model,
            func.count().label("claims"),
            func.sum(c.c.credit_nano).label("credit_nano"),
        )
        .where(
            c.c.account_id == account_id,
            c.c.created_at >= starting_at,
            c.c.created_at < ending_at,
        )
        .group_by(day, c.c.trigger, c.c.model)
    )
    if trigger is not None:
        query = query.where(c.c.trigger == trigger)
    if model is not None:
        query = query.where(c.c.model == model)
    async with store.read() as conn:
        rows = await conn.execute(query)
        return [
            ClaimGroup(
                day=r.day,
                trigger=r.trigger,
                model=r.model,
                count=int(r.claims),
                credit_nano=int(r.credit_nano),
            )
            for r in rows
        ]
