"""Queries behind the management API, always scoped to the caller's account."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select

from muxgate.store import Store
from muxgate.store import tables as t
from muxgate.store.buckets import Width, utc_bucket
from muxgate.store.claims import Claim
from muxgate.store.keys import KeyRecord, digest_of, load_key
from muxgate.store.ledger import balance, now_utc
from muxgate.store.money import NANO_PER_USD
from muxgate.wire.usage import UsageEvent

from .schemas import (
    BalanceData,
    CompletionTokensDetails,
    Generation,
    GenerationClaim,
    KeyUsage,
    ModelUsage,
    NativeTokens,
    PromptTokensDetails,
    RatingDetail,
    RatingResponses,
    UsageBucket,
    UsageFigures,
    UsageStatistics,
)

_USD = Decimal(NANO_PER_USD)
_MILLION = Decimal(1_000_000)
BucketWidth = Width


def usd(nano: int | Decimal) -> Decimal:
    return Decimal(nano) / _USD


async def usable_key(store: Store, secret: str) -> KeyRecord | None:
    """The key a secret belongs to, if the gateway would accept it now."""
    k = t.api_keys
    digest = digest_of(secret)
    async with store.read() as conn:
        key_id = (await conn.execute(select(k.c.id).where(k.c.digest == digest))).scalar()
        if key_id is None:
            return None
        record = await load_key(conn, key_id)
    return record if record.usable(now_utc()) else None


def _item(code: Any, tokens: int, rate_nano: int) -> RatingDetail:
    amount = usd(Decimal(tokens) * rate_nano / _MILLION)
    return RatingDetail(
        feeItemCode=code,
        originAmount=amount,
        billAmount=amount,
        discountAmount=Decimal(0),
        rate=usd(rate_nano),
    )


def generation(event: UsageEvent, claims: Iterable[Claim] = ()) -> Generation:
    uncached = max(event.prompt_tokens - event.cached_tokens, 0)
    details = [
        _item("prompt", uncached, event.price_prompt),
        _item("completion", event.completion_tokens, event.price_completion),
    ]
    if event.cached_tokens:
        details.append(_item("input_cache_read", event.cached_tokens, event.price_cached))
    billed = usd(event.cost_nano_usd)
    ttft = event.ttft_ms
    return Generation(
        api=event.api,
        generationId=event.request_id,
        model=event.model,
        createAt=datetime.fromtimestamp(event.created_ms / 1000, UTC),
        generationTime=round(event.total_ms - (ttft or 0.0)),
        latency=None if ttft is None else round(ttft),
        nativeTokens=NativeTokens(
            completion_tokens=event.completion_tokens,
            prompt_tokens=event.prompt_tokens,
            total_tokens=event.prompt_tokens + event.completion_tokens,
            completion_tokens_details=CompletionTokensDetails(
                reasoning_tokens=event.reasoning_tokens
            ),
            prompt_tokens_details=PromptTokensDetails(cached_tokens=event.cached_tokens),
        ),
        streamed=event.stream,
        cancelled=event.cancelled,
        finishReason=event.finish_reason,
        usage=billed,
        ratingResponses=RatingResponses(
            billAmount=billed,
            discountAmount=Decimal(0),
            originAmount=billed,
            priceVersion="channel",
            ratingDetails=details,
        ),
        requestRetryTimes=max(event.attempts - 1, 0),
        finalRetry=event.attempts > 1 and event.status == "ok",
        status=event.status,
        providerSlug=event.provider_id,
        # A failed request names the last channel it tried.
        endpointSlug=event.channel_id or (event.failovers[-1] if event.failovers else None),
        usageSource=event.usage_source,
        claims=[
            GenerationClaim(
                rule=c.rule_id, trigger=c.trigger, reason=c.reason, credit=usd(c.credit_nano)
            )
            for c in claims
        ],
    )


async def account_balance(store: Store, account_id: str) -> BalanceData:
    b = await balance(store, account_id)
    return BalanceData(
        total_credits=usd(b.total_nano),
        top_up_credits=usd(b.purchased_nano),
        bonus_credits=usd(b.bonus_nano),
    )


def _add(into: dict[str, int], row: Any) -> None:
    for name in into:
        into[name] += int(getattr(row, name))


def _figures(totals: dict[str, int]) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in totals.items() if k != "cost_nano"}
    values["cost"] = usd(totals["cost_nano"])
    return values


def _zero() -> dict[str, int]:
    return dict.fromkeys(
        (
            "requests",
            "failed_requests",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "cost_nano",
        ),
        0,
    )


async def usage_statistics(
    store: Store,
    account_id: str,
    *,
    starting_at: datetime,
    ending_at: datetime,
    width: BucketWidth,
    model: str | None = None,
    key_id: str | None = None,
) -> UsageStatistics:
    """Requests, tokens and cost over `[starting_at, ending_at)`: per bucket, model and key."""
    u = t.usage_records
    bucket = utc_bucket(store.dialect, u.c.created_at, width).label("bucket")
    query = (
        select(
            bucket,
            u.c.model,
            u.c.key_id,
            func.count().label("requests"),
            func.sum(case((u.c.status != "ok", 1), else_=0)).label("failed_requests"),
            func.sum(u.c.prompt_tokens).label("prompt_tokens"),
            func.sum(u.c.completion_tokens).label("completion_tokens"),
            func.sum(u.c.cached_tokens).label("cached_tokens"),
            func.sum(u.c.reasoning_tokens).label("reasoning_tokens"),
            func.sum(u.c.cost_nano_usd).label("cost_nano"),
        )
        .where(
            u.c.account_id == account_id,
            u.c.created_at >= starting_at,
            u.c.created_at < ending_at,
        )
        .group_by(bucket, u.c.model, u.c.key_id)
    )
    if model is not None:
        query = query.where(u.c.model == model)
    if key_id is not None:
        query = query.where(u.c.key_id == key_id)
    async with store.read() as conn:
        rows = list(await conn.execute(query))
    total = _zero()
    series: dict[str, dict[str, int]] = {}
    models: dict[str, dict[str, int]] = {}
    keys: dict[str, dict[str, int]] = {}
    for row in rows:
        for group, name in ((series, row.bucket), (models, row.model), (keys, row.key_id)):
            _add(group.setdefault(name, _zero()), row)
        _add(total, row)
    return UsageStatistics(
        starting_at=starting_at,
        ending_at=ending_at,
        bucket_width=width,
        total=UsageFigures(**_figures(total)),
        series=[UsageBucket(bucket=b, **_figures(v)) for b, v in sorted(series.items())],
        by_model=[ModelUsage(model=m, **_figures(v)) for m, v in _by_cost(models)],
        by_key=[KeyUsage(key_id=k, **_figures(v)) for k, v in _by_cost(keys)],
    )


def _by_cost(groups: dict[str, dict[str, int]]) -> Iterable[tuple[str, dict[str, int]]]:
    return sorted(groups.items(), key=lambda kv: (-kv[1]["cost_nano"], kv[0]))
