"""Response shapes of the account's insurance API, in the management API's style: a
`{"success": true, "data": …}` envelope, snake_case fields, USD as exact decimal numbers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec

Trigger = Literal[
    "high_latency", "low_throughput", "failed_stream", "unsatisfactory_content", "hallucination"
]
ExportFormat = Literal["jsonl", "json"]


class ClaimItem(msgspec.Struct, frozen=True, kw_only=True):
    """One claim: the rule that triggered on a request and what it credited. The request's
    tokens, cost and timings are there while its usage record is (`usage_retention_days`)."""

    request_id: str
    rule: str
    trigger: str
    reason: str
    model: str
    channel: str | None
    key_id: str
    created_at: datetime
    """When the request was made (its UTC day is the one the rule's daily cap counts)."""
    booked_at: datetime
    requested: Decimal
    """What the verdict asked for (share of the cost within the per-request cap)."""
    credit: Decimal
    """What was credited; below `requested` when the rule's daily cap was reached."""
    capped: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: Decimal | None
    latency: int | None
    """Time to first token, milliseconds."""
    throughput: float | None
    """Output tokens per second."""
    finish_reason: str | None


class ClaimPage(msgspec.Struct, frozen=True, kw_only=True):
    claims: list[ClaimItem]
    next_cursor: str | None
    """Pass as `cursor` for the next (older) page; null on the last page."""


class ClaimPageEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    success: bool = True
    data: ClaimPage


class Figures(msgspec.Struct, frozen=True, kw_only=True):
    count: int = 0
    """Claims, those capped to nothing included."""
    compensation: Decimal = Decimal(0)


class DayFigures(Figures, frozen=True, kw_only=True):
    date: str
    """UTC day, `2026-11-23`."""


class TriggerFigures(Figures, frozen=True, kw_only=True):
    trigger: str


class ModelFigures(Figures, frozen=True, kw_only=True):
    model: str


class ClaimSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The figures behind an insurance dashboard, over requests made in the range."""

    starting_at: datetime
    ending_at: datetime
    total_compensation: Decimal
    count: int
    average_per_claim: Decimal
    average_per_day: Decimal
    """Total compensation over the days of the range (a started day counts)."""
    series: list[DayFigures]
    """Days with claims, oldest first."""
    by_trigger: list[TriggerFigures]
    by_model: list[ModelFigures]


class ClaimSummaryEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    success: bool = True
    data: ClaimSummary


class InsuranceSettings(msgspec.Struct, frozen=True, kw_only=True):
    retain_content: bool
    """Keep a redacted copy of the request and answer of each claim (and of requests sampled
    for the hallucination judge), exportable by this account only. Off by default."""


class InsuranceSettingsEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    success: bool = True
    data: InsuranceSettings


class CaseClaim(msgspec.Struct, frozen=True, kw_only=True):
    rule: str
    trigger: str
    reason: str
    requested: Decimal
    credit: Decimal


class JudgeOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one hallucination rule's judge said about the answer."""

    rule: str
    judge_model: str | None
    hallucination: bool | None
    """None when the judge could not tell (see `error`)."""
    reason: str
    error: str | None
    """Why no verdict: the judge's answers stayed unusable, the rule is gone, ..."""


class Case(msgspec.Struct, frozen=True, kw_only=True):
    """One exported case: what was asked and answered (redacted), how it measured, and why
    it was claimed."""

    request_id: str
    created_at: datetime
    model: str
    surface: str
    claims: list[CaseClaim]
    measurements: dict[str, Any]
    """Timings, tokens, `cost` (USD), finish reason and status of the request."""
    request: Any
    """The request body as the client sent it, secrets and personal data replaced."""
    answer: dict[str, Any]
    """`text`, `reasoning` and `tool_calls` as the client received them, redacted alike."""
    judge_rules: list[str]
    """Hallucination rules that sampled the request for their judge."""
    judged_at: datetime | None
    """When the judges had all spoken (None while the case waits for them)."""
    judge_attempts: int
    """Passes whose judge answer was unusable."""
    judges: list[JudgeOutcome]
