"""Builders for the bus tests: real snapshots, usage lines, and waiting for a condition.
(Not in conftest: test modules should not import from it.)"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

import msgspec

from factories import usage_event
from muxgate.config import GatewaySection, compile_snapshot
from muxgate.demo import demo_config


def snapshot_bytes(version: int) -> bytes:
    """A real routing snapshot, as the control plane compiles it."""
    config = demo_config("http://127.0.0.1:9/v1", "sk-bus-test", GatewaySection())
    return compile_snapshot(config, version=version).encode()


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
