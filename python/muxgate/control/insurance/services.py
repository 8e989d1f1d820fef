"""From the store's claims and cases to the account's API shapes: amounts to USD, page cursors,
and the dashboard aggregates."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from muxgate.control.management.services import usd
from muxgate.store.cases import CaseRecord
from muxgate.store.claims import Claim, ClaimGroup

from .schemas import (
    Case,
    CaseClaim,
    ClaimItem,
    ClaimSummary,
    DayFigures,
    JudgeOutcome,
    ModelFigures,
    TriggerFigures,
)

_CURSOR = re.compile(r"^(\d{1,17})\.(\d{1,19})$")


def cursor_of(claim: Claim) -> str:
    """Where the next page starts: after this claim (request time in microseconds, id)."""
    micros = round(claim.created_at.timestamp() * 1_000_000)
    return f"{micros}.{claim.id}"


def parse_cursor(cursor: str) -> tuple[datetime, int] | None:
    """The position a cursor names, or None for one this API did not write."""
    match = _CURSOR.match(cursor)
    if match is None:
        return None
    micros, ident = int(match.group(1)), int(match.group(2))
    try:
        stamp = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000
        )
    except (OverflowError, OSError, ValueError):
        return None
    return stamp, ident


def claim_item(c: Claim) -> ClaimItem:
    tps = c.output_tokens_per_second
    return ClaimItem(
        request_id=c.request_id,
        rule=c.rule_id,
        trigger=c.trigger,
        reason=c.reason,
        model=c.model,
        channel=c.channel_id,
        key_id=c.key_id,
        created_at=c.created_at,
        booked_at=c.booked_at,
        requested=usd(c.requested_nano),
        credit=usd(c.credit_nano),
        capped=c.credit_nano < c.requested_nano,
        prompt_tokens=c.prompt_tokens,
        completion_tokens=c.completion_tokens,
        cost=None if c.cost_nano_usd is None else usd(c.cost_nano_usd),
        latency=None if c.ttft_ms is None else round(c.ttft_ms),
        throughput=None if tps is None else round(tps, 2),
        finish_reason=c.finish_reason,
    )


def _sum(groups: list[ClaimGroup], key: str) -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for g in groups:
        name = getattr(g, key)
        count, credit = totals.get(name, (0, 0))
        totals[name] = (count + g.count, credit + g.credit_nano)
    return totals


def _ranked(totals: dict[str, tuple[int, int]]) -> list[tuple[str, int, int]]:
    return sorted(((k, n, c) for k, (n, c) in totals.items()), key=lambda x: (-x[2], -x[1], x[0]))


def _per(total_nano: int, n: int) -> int:
    """An average, rounded to the nano-USD (half up), so it stays a short exact decimal."""
    return (2 * total_nano + n) // (2 * n) if n else 0


def summary(groups: list[ClaimGroup], starting_at: datetime, ending_at: datetime) -> ClaimSummary:
    count = sum(g.count for g in groups)
    total = sum(g.credit_nano for g in groups)
    days = max(1, math.ceil((ending_at - starting_at).total_seconds() / 86_400))
    return ClaimSummary(
        starting_at=starting_at,
        ending_at=ending_at,
        total_compensation=usd(total),
        count=count,
        average_per_claim=usd(_per(total, count)),
        average_per_day=usd(_per(total, days)),
        series=[
            DayFigures(date=d, count=n, compensation=usd(c))
            for d, (n, c) in sorted(_sum(groups, "day").items())
        ],
        by_trigger=[
            TriggerFigures(trigger=t, count=n, compensation=usd(c))
            for t, n, c in _ranked(_sum(groups, "trigger"))
        ],
        by_model=[
            ModelFigures(model=m, count=n, compensation=usd(c))
            for m, n, c in _ranked(_sum(groups, "model"))
        ],
    )


def _measurements(stored: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in stored.items() if k != "cost_nano_usd"}
    shown["cost"] = usd(int(stored.get("cost_nano_usd", 0)))
    return shown


def case_of(record: CaseRecord) -> Case:
    return Case(
        request_id=record.request_id,
        created_at=record.created_at,
        model=record.model,
        surface=record.surface,
        claims=[
            CaseClaim(
                rule=v["rule_id"],
                trigger=v["trigger"],
                reason=v["reason"],
                requested=usd(int(v["requested_nano"])),
                credit=usd(int(v["credit_nano"])),
            )
            for v in record.verdicts
        ],
        measurements=_measurements(record.measurements),
        request=record.request,
        answer=record.answer,
        judge_rules=record.judge_rules,
        judged_at=record.judged_at,
        judge_attempts=record.judge_attempts,
        judges=[
            JudgeOutcome(
                rule=o["rule_id"],
                judge_model=o.get("judge_model"),
                hallucination=o.get("hallucination"),
                reason=o.get("reason") or "",
                error=o.get("error"),
            )
            for o in record.judge_outcome or []
        ],
    )
