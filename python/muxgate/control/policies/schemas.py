"""Insurance rules and rate-limit policies: stored as data and compiled into the routing
snapshot; the engine evaluates the rules and enforces the limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from muxgate.control.fields import Description, Id, ModelPattern, Slug, UsdNonNegative, usd
from muxgate.store import policies
from muxgate.store.money import nano_to_usd

Trigger = Literal[
    "high_latency", "low_throughput", "failed_stream", "unsatisfactory_content", "hallucination"
]
AppliesTo = Literal["key", "account"]
TtftMs = Annotated[int, Meta(ge=1, le=3_600_000, description="high_latency: TTFT above, ms")]
P50Multiple = Annotated[
    float,
    Meta(gt=1, le=1000, description="high_latency: TTFT above this multiple of the model's p50"),
]
MinTokensPerSecond = Annotated[
    float, Meta(gt=0, le=1_000_000, description="low_throughput: output tokens/s below")
]
MinOutputTokens = Annotated[
    int, Meta(ge=0, le=10**9, description="low_throughput: judged from this many tokens on")
]
RepetitionNgram = Annotated[int, Meta(ge=2, le=64, description="unsatisfactory_content")]
RepetitionMax = Annotated[int, Meta(ge=2, le=10_000, description="unsatisfactory_content")]
SampleRate = Annotated[float, Meta(gt=0, le=1, description="hallucination: share judged")]
Percent = Annotated[int, Meta(ge=0, le=100)]
Rpm = Annotated[int, Meta(ge=1, le=10**9)]
Tpm = Annotated[int, Meta(ge=1, le=10**12)]
Burst = Annotated[int, Meta(ge=1, le=10**6)]


class TriggerParams(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The trigger's parameters. `high_latency`: `ttft_ms` and/or `p50_multiple` (both set:
    both must be exceeded; no p50 known yet: `ttft_ms` alone decides). `low_throughput`:
    `min_tokens_per_second`, `min_output_tokens` (default 50). `unsatisfactory_content`:
    `repetition_ngram` (default 8), `repetition_max` (default 12). `hallucination`:
    `sample_rate`, `judge_model`. `failed_stream` takes none. Others are refused (422)."""

    ttft_ms: TtftMs | None = None
    p50_multiple: P50Multiple | None = None
    min_tokens_per_second: MinTokensPerSecond | None = None
    min_output_tokens: MinOutputTokens | None = None
    repetition_ngram: RepetitionNgram | None = None
    repetition_max: RepetitionMax | None = None
    sample_rate: SampleRate | None = None
    judge_model: Slug | None = None


class TriggerParamsUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Parameters to change, merged over the current ones (`null` removes one); when the
    trigger changes, the rule's parameters start afresh from these."""

    ttft_ms: TtftMs | UnsetType | None = UNSET
    p50_multiple: P50Multiple | UnsetType | None = UNSET
    min_tokens_per_second: MinTokensPerSecond | UnsetType | None = UNSET
    min_output_tokens: MinOutputTokens | UnsetType | None = UNSET
    repetition_ngram: RepetitionNgram | UnsetType | None = UNSET
    repetition_max: RepetitionMax | UnsetType | None = UNSET
    sample_rate: SampleRate | UnsetType | None = UNSET
    judge_model: Slug | UnsetType | None = UNSET


class InsuranceRule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    description: str
    trigger: Trigger
    params: TriggerParams
    models: list[str]
    channels: list[str]
    accounts: list[str]
    """The scope: requests of these models (patterns), channels and accounts; empty = all."""
    payout_percent: int
    """Share of the request's cost credited when the rule triggers."""
    cap_per_request: str | None
    cap_per_day: str | None
    """At most this much per account and UTC day."""
    min_cost: str
    """Requests that cost less are not covered."""
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, r: policies.InsuranceRuleRecord) -> InsuranceRule:
        return cls(
            id=r.id,
            description=r.description,
            trigger=r.trigger,
            params=msgspec.convert(r.params, TriggerParams),
            models=r.models,
            channels=r.channels,
            accounts=r.accounts,
            payout_percent=r.payout_percent,
            cap_per_request=usd(r.cap_per_request_nano),
            cap_per_day=usd(r.cap_per_day_nano),
            min_cost=nano_to_usd(r.min_cost_nano),
            enabled=r.enabled,
            created_at=r.created_at,
        )


class InsuranceRuleCreate(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    trigger: Trigger
    description: Description = ""
    params: TriggerParams = TriggerParams()
    models: list[ModelPattern] = []
    channels: list[Id] = []
    accounts: list[Id] = []
    payout_percent: Percent = 100
    cap_per_request: UsdNonNegative | None = None
    cap_per_day: UsdNonNegative | None = None
    min_cost: UsdNonNegative = "0"
    enabled: bool = True


class InsuranceRuleUpdate(msgspec.Struct, frozen=True, kw_only=True):
    trigger: Trigger | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    params: TriggerParamsUpdate | UnsetType = UNSET
    models: list[ModelPattern] | UnsetType = UNSET
    channels: list[Id] | UnsetType = UNSET
    accounts: list[Id] | UnsetType = UNSET
    payout_percent: Percent | UnsetType = UNSET
    cap_per_request: UsdNonNegative | UnsetType | None = UNSET
    cap_per_day: UsdNonNegative | UnsetType | None = UNSET
    min_cost: UsdNonNegative | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class RateLimitPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Limits each key (`applies_to` "key") or each account ("account") among `subjects` (all
    when empty) on requests of `models` (all when empty). Where several cover a request, a
    key's own `rpm_limit`/`tpm_limit` wins, then a policy naming subjects, then one naming
    models, then a global one."""

    id: str
    description: str
    applies_to: AppliesTo
    subjects: list[str]
    models: list[str]
    rpm: int | None
    tpm: int | None
    burst: int | None
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, p: policies.RateLimitPolicyRecord) -> RateLimitPolicy:
        return cls(
            id=p.id,
            description=p.description,
            applies_to=p.applies_to,
            subjects=p.subjects,
            models=p.models,
            rpm=p.rpm,
            tpm=p.tpm,
            burst=p.burst,
            enabled=p.enabled,
            created_at=p.created_at,
        )


class RateLimitPolicyCreate(msgspec.Struct, frozen=True, kw_only=True):
    """At least one of rpm and tpm; `subjects` are existing key ids or account ids, as
    `applies_to` says (the id may not start with `key:`, the snapshot's name for a key's own
    limits)."""

    id: Id
    applies_to: AppliesTo
    description: Description = ""
    subjects: list[Id] = []
    models: list[ModelPattern] = []
    rpm: Rpm | None = None
    tpm: Tpm | None = None
    burst: Burst | None = None
    enabled: bool = True


class RateLimitPolicyUpdate(msgspec.Struct, frozen=True, kw_only=True):
    applies_to: AppliesTo | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    subjects: list[Id] | UnsetType = UNSET
    models: list[ModelPattern] | UnsetType = UNSET
    rpm: Rpm | UnsetType | None = UNSET
    tpm: Tpm | UnsetType | None = UNSET
    burst: Burst | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET
