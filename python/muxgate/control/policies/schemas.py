"""Insurance rules and rate-limit policies: stored as data, enforced elsewhere."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from muxgate.control.fields import Description, Id, ModelPattern, UsdNonNegative, usd
from muxgate.store import policies

Trigger = Literal["high_latency", "low_throughput", "failed_stream", "unsatisfactory_content"]
AppliesTo = Literal["key", "account"]
Threshold = Annotated[
    float,
    Meta(
        gt=0,
        le=1e9,
        description="TTFT in ms for high_latency, output tokens/s for low_throughput",
    ),
]
Percent = Annotated[int, Meta(ge=0, le=100)]
Rpm = Annotated[int, Meta(ge=1, le=10**9)]
Tpm = Annotated[int, Meta(ge=1, le=10**12)]
Burst = Annotated[int, Meta(ge=1, le=10**6)]


class InsuranceRule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    description: str
    trigger: Trigger
    threshold: float | None
    models: list[str]
    channels: list[str]
    payout_percent: int
    """Share of the request's cost credited when the rule is breached."""
    cap_per_request: str | None
    cap_per_day: str | None
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, r: policies.InsuranceRuleRecord) -> InsuranceRule:
        return cls(
            id=r.id,
            description=r.description,
            trigger=r.trigger,
            threshold=r.threshold,
            models=r.models,
            channels=r.channels,
            payout_percent=r.payout_percent,
            cap_per_request=usd(r.cap_per_request_nano),
            cap_per_day=usd(r.cap_per_day_nano),
            enabled=r.enabled,
            created_at=r.created_at,
        )


class InsuranceRuleCreate(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    trigger: Trigger
    description: Description = ""
    threshold: Threshold | None = None
    models: list[ModelPattern] = []
    channels: list[Id] = []
    payout_percent: Percent = 100
    cap_per_request: UsdNonNegative | None = None
    cap_per_day: UsdNonNegative | None = None
    enabled: bool = True


class InsuranceRuleUpdate(msgspec.Struct, frozen=True, kw_only=True):
    trigger: Trigger | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    threshold: Threshold | UnsetType | None = UNSET
    models: list[ModelPattern] | UnsetType = UNSET
    channels: list[Id] | UnsetType = UNSET
    payout_percent: Percent | UnsetType = UNSET
    cap_per_request: UsdNonNegative | UnsetType | None = UNSET
    cap_per_day: UsdNonNegative | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET


class RateLimitPolicy(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    description: str
    applies_to: AppliesTo
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
            models=p.models,
            rpm=p.rpm,
            tpm=p.tpm,
            burst=p.burst,
            enabled=p.enabled,
            created_at=p.created_at,
        )


class RateLimitPolicyCreate(msgspec.Struct, frozen=True, kw_only=True):
    """At least one of rpm and tpm."""

    id: Id
    applies_to: AppliesTo
    description: Description = ""
    models: list[ModelPattern] = []
    rpm: Rpm | None = None
    tpm: Tpm | None = None
    burst: Burst | None = None
    enabled: bool = True


class RateLimitPolicyUpdate(msgspec.Struct, frozen=True, kw_only=True):
    applies_to: AppliesTo | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    models: list[ModelPattern] | UnsetType = UNSET
    rpm: Rpm | UnsetType | None = UNSET
    tpm: Tpm | UnsetType | None = UNSET
    burst: Burst | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET
