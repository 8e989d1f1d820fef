"""Channels' live figures from recent usage: medians of time to first token (streams only) and
of output speed, and an error rate that counts the failures other channels made up for."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec

from muxgate.store import Store, live_stats, usage
from muxgate.wire import LiveStats, UsageEvent
from store.conftest import T0, EventFactory

NOW = T0 + timedelta(hours=1)


async def test_figures_need_enough_recent_requests(store: Store, event: EventFactory) -> None:
    def served(rid: str, channel: str, minutes: int = 30, **changes: Any) -> UsageEvent:
        values = {"channel_id": channel, **changes}
        return msgspec.structs.replace(
            event(rid, "acme", 0, created=T0 + timedelta(minutes=minutes)), **values
        )

    batch = [
        served(f"a{i}", "fast", ttft_ms=100.0 + i, output_tokens_per_second=80.0 + i)
        for i in range(21)
    ]
    # Requests that failed on "flaky" and were answered by "fast": flaky's failures.
    batch += [served(f"f{i}", "fast", ttft_ms=110.0, failovers=["flaky"]) for i in range(9)]
    batch += [served(f"k{i}", "flaky", ttft_ms=900.0) for i in range(11)]
    batch += [served(f"x{i}", "flaky", status="failed") for i in range(10)]
    # Not counted: cancelled, older than the window; JSON answers have no TTFT of their own.
    batch += [served(f"c{i}", "flaky", status="cancelled") for i in range(40)]
    batch += [served(f"o{i}", "flaky", minutes=-10, status="failed") for i in range(40)]
    batch += [served(f"j{i}", "json", stream=False, ttft_ms=5_000.0) for i in range(25)]
    await usage.record_usage(store, batch)
    async with store.read() as conn:
        stats = await live_stats.channel_stats(conn, NOW)
    fast = stats["fast"]
    assert fast.ttft_p50_ms == 110.0
    assert fast.tokens_per_second_p50 == 94.5
    assert fast.error_rate == 0.0
    # 11 served + 10 failed + 9 failed over = 30 requests, 19 of them failures; too few
    # successful streams for medians.
    assert stats["flaky"] == LiveStats(error_rate=19 / 30)
    assert stats["json"].ttft_p50_ms is None
    assert stats["json"].tokens_per_second_p50 == 125.0
    stored = await usage.get_usage(store, "f0")
    assert stored is not None
    assert stored.failovers == ["flaky"]
