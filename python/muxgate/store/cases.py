"""Insurance cases: the redacted content of requests that made a claim (or were sampled for
the hallucination judge), kept for accounts that opted into content retention so they can
export their own bad cases. Nothing is written unredacted, and cases go with usage retention."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store import tables as t
from muxgate.store.redact import redact, redact_text
from muxgate.store.rows import to_record
from muxgate.store.store import Store
from muxgate.wire.usage import Case, UsageEvent, Verdict


class CaseRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One case as the account exports it."""

    request_id: str
    created_at: datetime
    model: str
    surface: str
    verdicts: list[dict[str, Any]]
    """Rule, trigger, reason, requested and booked credit (nano-USD) of each claim."""
    measurements: dict[str, Any]
    request: Any
    answer: dict[str, Any]
    judge_rules: list[str]
    judged_at: datetime | None
    judge_attempts: int = 0
    """Passes of the judge that failed (an unusable answer) on this case so far."""
    judge_outcome: list[dict[str, Any]] | None = None
    """What each judge said: rule, judge model, `hallucination` (None when it could not
    tell), its reason, or the error it was given up on."""


class DueCase(CaseRecord, frozen=True, kw_only=True):
    """A case the hallucination judge owes a verdict."""

    account_id: str


def case_verdict(verdict: Verdict, credit_nano: int) -> dict[str, Any]:
    """A claim as its case records it (the reason may quote the answer, so it is redacted)."""
    return {
        "rule_id": verdict.rule_id,
        "trigger": verdict.trigger,
        "reason": redact_text(verdict.reason),
        "requested_nano": verdict.credit_nano,
        "credit_nano": credit_nano,
    }


def _request(case: Case) -> Any:
    try:
        body = msgspec.json.decode(case.request)
    except msgspec.DecodeError:
        return {"unparsed": redact_text(bytes(case.request).decode("utf-8", "replace"))}
    return redact(body)


def _measurements(event: UsageEvent) -> dict[str, Any]:
    return {
        "ttft_ms": event.ttft_ms,
        "total_ms": event.total_ms,
        "output_tokens_per_second": event.output_tokens_per_second,
        "max_chunk_gap_ms": event.max_chunk_gap_ms,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "reasoning_tokens": event.reasoning_tokens,
        "cached_tokens": event.cached_tokens,
        "cost_nano_usd": event.cost_nano_usd,
        "finish_reason": event.finish_reason,
        "status": event.status,
        "http_status": event.http_status,
        "error_type": event.error_type,
        "stream": event.stream,
    }


async def retaining(conn: AsyncConnection, account_ids: set[str]) -> set[str]:
    """The accounts among `account_ids` that retain content now: an account that opted out
    after the gateway sampled its request gets nothing kept."""
    if not account_ids:
        return set()
    a = t.accounts
    query = select(a.c.id).where(a.c.id.in_(sorted(account_ids)), a.c.retain_content)
    return set((await conn.execute(query)).scalars())


async def store_cases(
    conn: AsyncConnection, events: Sequence[UsageEvent], credits: dict[tuple[str, str], int]
) -> int:
    """Write the redacted cases of `events` (those carrying one, of retaining accounts) inside
    the caller's transaction; `credits` is what booking credited per (request, rule)."""
    with_case = [e for e in events if e.case is not None]
    if not with_case:
        return 0
    allowed = await retaining(conn, {e.account_id for e in with_case})
    c = t.insurance_cases
    ids = [e.request_id for e in with_case]
    present = set(
        (await conn.execute(select(c.c.request_id).where(c.c.request_id.in_(ids)))).scalars()
    )
    rows: list[dict[str, Any]] = []
    for event in with_case:
        case = event.case
        if case is None or event.account_id not in allowed or event.request_id in present:
            continue
        answer = msgspec.to_builtins(case.answer)
        rows.append(
            {
                "request_id": event.request_id,
                "account_id": event.account_id,
                "created_at": datetime.fromtimestamp(event.created_ms / 1000, UTC),
                "model": event.model,
                "surface": case.surface,
                "verdicts": [
                    case_verdict(v, credits.get((event.request_id, v.rule_id), 0))
                    for v in event.insurance
                ],
                "measurements": _measurements(event),
                "request": _request(case),
                "answer": redact(answer),
                "judge_rules": list(case.judge_rules),
                "judged_at": None,
                "judge_next_at": (
                    datetime.fromtimestamp(event.created_ms / 1000, UTC)
                    if case.judge_rules
                    else None
                ),
            }
        )
    if rows:
        await conn.execute(c.insert(), rows)
    return len(rows)


async def iter_cases(
    store: Store,
    account_id: str,
    *,
    starting_at: datetime | None = None,
    ending_at: datetime | None = None,
    batch: int = 200,
) -> AsyncIterator[CaseRecord]:
    """The account's cases, oldest first, read in batches so an export of any size streams."""
    c = t.insurance_cases
    after: tuple[datetime, str] | None = None
    while True:
        query = select(c).where(c.c.account_id == account_id)
        if starting_at is not None:
            query = query.where(c.c.created_at >= starting_at)
        if ending_at is not None:
            query = query.where(c.c.created_at < ending_at)
        if after is not None:
            stamp, ident = after
            query = query.where(
                (c.c.created_at > stamp) | ((c.c.created_at == stamp) & (c.c.request_id > ident))
            )
        query = query.order_by(c.c.created_at, c.c.request_id).limit(batch)
        async with store.read() as conn:
            rows = [to_record(r, CaseRecord) for r in await conn.execute(query)]
        for record in rows:
            yield record
        if len(rows) < batch:
            return
        after = (rows[-1].created_at, rows[-1].request_id)


async def mark_judged(
    conn: AsyncConnection,
    request_ids: Sequence[str],
    verdicts: dict[str, list[dict[str, Any]]],
    now: datetime,
    outcomes: dict[str, list[dict[str, Any]]] | None = None,
) -> None:
    """Record on the cases of `request_ids` that the judge has ruled, with the claims it made
    and, per case, what the judges said."""
    c = t.insurance_cases
    query = select(c.c.request_id, c.c.verdicts).where(c.c.request_id.in_(sorted(request_ids)))
    for request_id, current in (await conn.execute(query)).all():
        values: dict[str, Any] = {
            "verdicts": [*current, *verdicts.get(request_id, [])],
            "judged_at": now,
            "judge_next_at": None,
        }
        if outcomes is not None and request_id in outcomes:
            values["judge_outcome"] = outcomes[request_id]
        await conn.execute(c.update().where(c.c.request_id == request_id).values(**values))


async def due_cases(store: Store, now: datetime, limit: int) -> list[DueCase]:
    """Cases awaiting the judge whose next attempt is due, oldest first."""
    c = t.insurance_cases
    query = (
        select(c)
        .where(c.c.judge_next_at.is_not(None), c.c.judge_next_at <= now)
        .order_by(c.c.created_at, c.c.request_id)
        .limit(limit)
    )
    async with store.read() as conn:
        return [to_record(r, DueCase) for r in await conn.execute(query)]


async def defer_judgement(
    store: Store,
    request_id: str,
    *,
    outcome: list[dict[str, Any]],
    attempts: int,
    next_at: datetime,
) -> None:
    """Keep a case waiting for the judge until `next_at`, with what it said so far."""
    c = t.insurance_cases
    async with store.transaction() as conn:
        await conn.execute(
            c.update()
            .where(c.c.request_id == request_id, c.c.judged_at.is_(None))
            .values(judge_outcome=outcome, judge_attempts=attempts, judge_next_at=next_at)
        )
