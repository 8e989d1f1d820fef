"""Builders for the bus tests: real snapshots, usage lines, and waiting for a condition.
(Not in conftest: test modules should not import from it.)"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

import msgspec

from muxgate.config import GatewaySection, compile_snapshot
from muxgate.demo import demo_config
from muxgate.wire import UsageEvent


def snapshot_bytes(version: int) -> bytes:
    """A real routing snapshot, as the control plane compiles it."""
    config = demo_config("http://127.0.0.1:9/v1", "sk-bus-test", GatewaySection())
    return compile_snapshot(config, version=version).encode()


def usage_event(request_id: str) -> UsageEvent:
    return UsageEvent(
        request_id=request_id,
        created_ms=1_700_000_000_000,
        account_id="demo",
        key_id="k1",
        model="openai/gpt-4o-mini",
        channel_id="c1",
        provider_id="p1",
        upstream_model="gpt-4o-mini",
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=0,
        reasoning_tokens=0,
        local_prompt_tokens=10,
        local_completion_tokens=5,
        usage_source="provider",
        cost_nano_usd=4_500,
        ttft_ms=12.5,
        total_ms=40.0,
        output_tokens_per_second=125.0,
        max_chunk_gap_ms=3.0,
        gateway_overhead_us=80,
        finish_reason="stop",
        status="ok",
        http_status=200,
        error_type=None,
        error_message=None,
        stream=False,
        cancelled=False,
        attempts=1,
        malformed_chunks=0,
    )


def usage_lines(*request_ids: str) -> bytes:
    return b"".join(msgspec.json.encode(usage_event(r)) + b"\n" for r in request_ids)


async def eventually(check: Callable[[], object], within: float, step: float = 0.01) -> float:
    """Seconds until `check` (plain or async) held; fails the test after `within` seconds."""
    start = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(step)
