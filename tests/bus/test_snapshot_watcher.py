"""The snapshot watcher with the real engine behind it: hints, the polling safety net, outages,
and a worker that starts without any snapshot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bus.helpers import eventually, snapshot_bytes
from muxgate._native import Engine
from muxgate.bus import LocalBus
from muxgate.bus.redis import RedisBus
from muxgate.gateway.snapshots import SnapshotWatcher
from servers import RedisServer
from waiting import HANG


def loader(engine: Engine) -> Callable[[bytes], None]:
    def load(data: bytes) -> None:
        engine.load_snapshot(data)

    return load


@pytest.fixture
async def watched(redis_bus: RedisBus) -> AsyncIterator[tuple[Engine, SnapshotWatcher]]:
    engine = Engine()
    watcher = SnapshotWatcher(redis_bus, loader(engine), poll_interval=1.0, retry_max=0.2)
    watcher.start()
    try:
        yield engine, watcher
    finally:
        await watcher.stop()


async def test_a_published_snapshot_is_loaded_on_its_hint(
    redis_bus: RedisBus, watched: tuple[Engine, SnapshotWatcher]
) -> None:
    engine, watcher = watched
    watcher.poll_interval = 3600.0  # the hint alone must do it: no poll comes in time
    await redis_bus.publish_snapshot(1, snapshot_bytes(1))
    await eventually(lambda: engine.routing_version == 1, within=HANG)
    await redis_bus.publish_snapshot(2, snapshot_bytes(2))
    assert await watcher.wait_for_version(2, wait_s=HANG)
    assert engine.routing_version == 2


async def test_a_missed_hint_is_caught_by_polling(
    redis_bus: RedisBus, raw_redis: aioredis.Redis, watched: tuple[Engine, SnapshotWatcher]
) -> None:
    engine, watcher = watched
    await redis_bus.publish_snapshot(1, snapshot_bytes(1))
    assert await watcher.wait_for_version(1, wait_s=HANG)
    # The pointer moves with no PUBLISH: what a subscriber sees when the message is lost.
    await raw_redis.set("muxgate:routing:snap:2", snapshot_bytes(2))
    await raw_redis.set("muxgate:routing:current", 2)
    assert await watcher.wait_for_version(2, wait_s=HANG)
    assert engine.routing_version == 2


async def test_keeps_serving_through_an_outage_and_catches_up(
    redis_server: RedisServer,
    redis_bus: RedisBus,
    watched: tuple[Engine, SnapshotWatcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, watcher = watched
    watcher.poll_interval = 0.05
    await redis_bus.publish_snapshot(1, snapshot_bytes(1))
    assert await watcher.wait_for_version(1, wait_s=HANG)
    with caplog.at_level(logging.INFO, logger="muxgate.gateway.snapshots"):
        redis_server.stop()
        await asyncio.sleep(0.6)  # many failed polls and reconnects
        assert engine.routing_version == 1
        redis_server.start()  # empty: the control plane publishes again
        await redis_bus.publish_snapshot(2, snapshot_bytes(2))
        assert await watcher.wait_for_version(2, wait_s=HANG)
        await eventually(lambda: "reachable again" in caplog.text, within=HANG)
    lost = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in caplog.records]
    assert engine.routing_version == 2


async def test_a_snapshot_the_engine_rejects_is_skipped(
    redis_bus: RedisBus, watched: tuple[Engine, SnapshotWatcher]
) -> None:
    engine, watcher = watched
    await redis_bus.publish_snapshot(1, snapshot_bytes(1))
    assert await watcher.wait_for_version(1, wait_s=HANG)
    await redis_bus.publish_snapshot(2, b"\xc1 not msgpack")
    assert not await watcher.wait_for_version(2, wait_s=0.3)
    await redis_bus.publish_snapshot(3, snapshot_bytes(3))
    assert await watcher.wait_for_version(3, wait_s=HANG)
    assert engine.routing_version == 3


async def test_local_bus_delivers_snapshots(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    engine = Engine()
    await bus.publish_snapshot(1, snapshot_bytes(1))
    watcher = SnapshotWatcher(bus, loader(engine), poll_interval=60.0)
    watcher.start()
    try:
        assert await watcher.wait_for_version(1, wait_s=HANG)
        await bus.publish_snapshot(2, snapshot_bytes(2))
        assert await watcher.wait_for_version(2, wait_s=HANG)
        assert engine.routing_version == 2
    finally:
        await watcher.stop()
        bus.close()
