"""Response shapes of the management API, field names as ZenMux spells them. Amounts are USD
as exact decimals, encoded as JSON numbers (see `controllers.exact_json`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from muxgate.wire.usage import Api


class CompletionTokensDetails(msgspec.Struct, frozen=True, kw_only=True):
    reasoning_tokens: int


class PromptTokensDetails(msgspec.Struct, frozen=True, kw_only=True):
    cached_tokens: int


class NativeTokens(msgspec.Struct, frozen=True, kw_only=True):
    completion_tokens: int
    prompt_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails
    prompt_tokens_details: PromptTokensDetails


class RatingDetail(msgspec.Struct, frozen=True, kw_only=True):
    feeItemCode: Literal["prompt", "completion", "input_cache_read"]
    originAmount: Decimal
    billAmount: Decimal
    discountAmount: Decimal
    rate: Decimal
    """USD per million tokens."""


class RatingResponses(msgspec.Struct, frozen=True, kw_only=True):
    billAmount: Decimal
    discountAmount: Decimal
    originAmount: Decimal
    priceVersion: str
    ratingDetails: list[RatingDetail]


class GenerationClaim(msgspec.Struct, frozen=True, kw_only=True):
    """An insurance rule that triggered on the request, and what it credited."""

    rule: str
    trigger: str
    reason: str
    credit: Decimal
    """USD credited to the bonus balance (0 when the rule's daily cap was reached)."""


class Generation(msgspec.Struct, frozen=True, kw_only=True):
    """One request as metered: tokens, timings, cost, retries."""

    api: Api
    generationId: str
    model: str
    createAt: datetime
    generationTime: int
    """Milliseconds from the first token to the end."""
    latency: int | None
    """Time to first token, milliseconds."""
    nativeTokens: NativeTokens
    streamed: bool
    cancelled: bool
    finishReason: str | None
    usage: Decimal
    """Credits consumed (1 credit = 1 USD)."""
    ratingResponses: RatingResponses
    requestRetryTimes: int
    finalRetry: bool
    status: str
    """`ok`, `failed` or `cancelled`."""
    providerSlug: str | None
    endpointSlug: str | None
    """The channel that served the request."""
    usageSource: str
    """Whose token counts were billed: `provider`, `local` (stream cut early) or `none`."""
    claims: list[GenerationClaim] = []
    """Insurance claims of the request (a judge's verdict may be added minutes later)."""


class BalanceData(msgspec.Struct, frozen=True, kw_only=True):
    currency: Literal["usd"] = "usd"
    total_credits: Decimal
    top_up_credits: Decimal
    bonus_credits: Decimal


class BalanceEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    success: bool = True
    data: BalanceData


class UsageFigures(msgspec.Struct, frozen=True, kw_only=True):
    requests: int = 0
    failed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = Decimal(0)


class UsageBucket(UsageFigures, frozen=True, kw_only=True):
    bucket: str
    """Start of the bucket: `2026-11-23T17:00:00Z` (hourly) or `2026-11-23` (daily), UTC."""


class ModelUsage(UsageFigures, frozen=True, kw_only=True):
    model: str


class KeyUsage(UsageFigures, frozen=True, kw_only=True):
    key_id: str


class UsageStatistics(msgspec.Struct, frozen=True, kw_only=True):
    starting_at: datetime
    ending_at: datetime
    bucket_width: Literal["1h", "1d"]
    total: UsageFigures
    series: list[UsageBucket]
    by_model: list[ModelUsage]
    by_key: list[KeyUsage]


class UsageEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    success: bool = True
    data: UsageStatistics
