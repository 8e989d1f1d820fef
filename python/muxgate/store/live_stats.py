"""How each channel behaved lately, from the usage records of a sliding window: its median
time to first token and output speed, and its error rate (failures another channel made up
for included). Shipped in the routing snapshot for requests that route by latency,
throughput or quality; per-worker passive health still reacts within a request."""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import median

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store import tables as t
from muxgate.wire import LiveStats

WINDOW = timedelta(hours=1)
# Figures from fewer requests than this are noise: the channel is "unknown" instead.
MIN_SAMPLES = 20
# The newest requests per channel that count, so a busy channel's figures stay recent.
MAX_SAMPLES = 1000
FIELDS = ("ttft_p50_ms", "tokens_per_second_p50", "error_rate")


async def channel_stats(conn: AsyncConnection, now: datetime) -> dict[str, LiveStats]:
    """Per channel id, its figures over the last `WINDOW` (newest `MAX_SAMPLES` requests)."""
    u = t.usage_records
    rank = (
        func.row_number()
        .over(partition_by=u.c.channel_id, order_by=(u.c.created_at.desc(), u.c.request_id))
        .label("rank")
    )
    recent = (
        select(
            u.c.channel_id,
            u.c.status,
            u.c.stream,
            u.c.ttft_ms,
            u.c.output_tokens_per_second,
            rank,
        )
        .where(u.c.created_at >= now - WINDOW, u.c.channel_id.is_not(None))
        .subquery()
    )
    query = select(recent).where(recent.c.rank <= MAX_SAMPLES)
    served: dict[str, _Samples] = {}
    for row in await conn.execute(query):
        samples = served.setdefault(row.channel_id, _Samples())
        if row.status == "cancelled":
            continue
        samples.requests += 1
        if row.status == "failed":
            samples.failures += 1
            continue
        # A JSON answer's first byte comes once it is complete: not latency.
        if row.stream and row.ttft_ms is not None:
            samples.ttft.append(float(row.ttft_ms))
        if row.output_tokens_per_second is not None:
            samples.speed.append(float(row.output_tokens_per_second))
    failed_over = select(u.c.failovers).where(u.c.created_at >= now - WINDOW, u.c.failovers != "[]")
    for (encoded,) in await conn.execute(failed_over):
        for channel in msgspec.json.decode(encoded, type=list[str]):
            samples = served.setdefault(channel, _Samples())
            samples.requests += 1
            samples.failures += 1
    return {channel: s.figures() for channel, s in served.items()}


class _Samples:
    def __init__(self) -> None:
        self.requests = 0
        self.failures = 0
        self.ttft: list[float] = []
        self.speed: list[float] = []

    def figures(self) -> LiveStats:
        enough = len(self.ttft) >= MIN_SAMPLES
        return LiveStats(
            ttft_p50_ms=median(self.ttft) if enough else None,
            tokens_per_second_p50=median(self.speed) if len(self.speed) >= MIN_SAMPLES else None,
            error_rate=self.failures / self.requests if self.requests >= MIN_SAMPLES else None,
        )
