"""The Redis bus against a real redis-server: the snapshot pointer, hints, and the stream."""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis

from bus.helpers import eventually, usage_lines
from muxgate.bus import BusUnavailable
from muxgate.bus.redis import RedisBus
from servers import RedisServer
from waiting import HANG


async def test_pointer_never_moves_backwards(
    redis_bus: RedisBus, raw_redis: aioredis.Redis
) -> None:
    assert await redis_bus.current_version() is None
    assert await redis_bus.publish_snapshot(3, b"three")
    assert not await redis_bus.publish_snapshot(2, b"two")
    assert not await redis_bus.publish_snapshot(3, b"three again")
    assert await redis_bus.current_version() == 3
    assert await redis_bus.fetch_snapshot(3) == b"three"
    assert await redis_bus.fetch_snapshot(2) is None
    assert await raw_redis.get("muxgate:routing:current") == b"3"


async def test_superseded_snapshots_expire_and_recent_ones_stay(
    redis_bus: RedisBus, raw_redis: aioredis.Redis
) -> None:
    for version in range(1, 9):
        await redis_bus.publish_snapshot(version, b"v%d" % version)
    ttls = {v: await raw_redis.ttl(f"muxgate:routing:snap:{v}") for v in range(1, 9)}
    assert all(0 < ttls[v] <= redis_bus.superseded_ttl_s for v in (1, 2, 3)), ttls
    assert all(ttls[v] == -1 for v in range(4, 9)), ttls


async def test_hints_start_with_the_current_version_then_follow_publishes(
    redis_bus: RedisBus,
) -> None:
    await redis_bus.publish_snapshot(1, b"one")
    seen: list[int] = []

    async def listen() -> None:
        async for version in redis_bus.version_hints():
            seen.append(version)

    task = asyncio.create_task(listen())
    await eventually(lambda: seen == [1], within=HANG)
    await redis_bus.publish_snapshot(2, b"two")
    await redis_bus.publish_snapshot(1, b"stale")  # refused: no hint
    await redis_bus.publish_snapshot(5, b"five")
    await eventually(lambda: seen == [1, 2, 5], within=HANG)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_calls_raise_bus_unavailable_while_redis_is_down(
    redis_server: RedisServer, redis_bus: RedisBus
) -> None:
    redis_server.stop()
    for call in (
        redis_bus.current_version(),
        redis_bus.fetch_snapshot(1),
        redis_bus.publish_snapshot(1, b"x"),
        redis_bus.append_usage(b"{}\n"),
        redis_bus.read_usage("control", "c1", 10, 10),
    ):
        try:
            await call
        except BusUnavailable:
            continue
        raise AssertionError("expected BusUnavailable")
    redis_server.start()
    assert await redis_bus.current_version() is None


async def test_group_created_after_appends_still_reads_them(redis_bus: RedisBus) -> None:
    """Redis restarted empty and workers replayed spills before the consumer came back."""
    first = await redis_bus.append_usage(usage_lines("r1"))
    second = await redis_bus.append_usage(usage_lines("r2"))
    entries = await redis_bus.read_usage("control", "c1", 10, 100)
    assert [e.id for e in entries] == [first, second]
    assert entries[0].lines == usage_lines("r1")


async def test_group_lost_with_a_redis_restart_is_created_again(
    redis_server: RedisServer, redis_bus: RedisBus
) -> None:
    await redis_bus.append_usage(usage_lines("r1"))
    assert len(await redis_bus.read_usage("control", "c1", 10, 100)) == 1
    redis_server.stop()
    redis_server.start()
    await redis_bus.append_usage(usage_lines("r2"))
    entries = await redis_bus.read_usage("control", "c1", 10, 100)
    assert [e.lines for e in entries] == [usage_lines("r2")]


async def test_pending_and_claim_and_dead_letter(
    redis_bus: RedisBus, raw_redis: aioredis.Redis
) -> None:
    ids = [await redis_bus.append_usage(usage_lines(f"r{i}")) for i in range(3)]
    assert [e.id for e in await redis_bus.read_usage("control", "a", 10, 100)] == ids
    assert [e.id for e in await redis_bus.read_usage("control", "a", 10, 0, pending=True)] == ids
    assert await redis_bus.read_usage("control", "b", 10, 0, pending=True) == []
    await asyncio.sleep(0.05)
    claimed = await redis_bus.claim_stale_usage("control", "b", 20, 10)
    assert [e.id for e in claimed] == ids
    assert await redis_bus.claim_stale_usage("control", "c", 60_000, 10) == []
    await redis_bus.ack_usage("control", ids[:2])
    await redis_bus.dead_letter_usage("control", ids[2], b"not json\n", "bad")
    summary = await raw_redis.xpending("muxgate:usage", "control")
    assert summary["pending"] == 0
    dead = await redis_bus.dead_usage()
    assert [(d.entry, d.lines, d.reason) for d in dead] == [(ids[2], b"not json\n", "bad")]


async def test_acknowledged_entries_leave_the_stream_and_unread_ones_stay(
    redis_bus: RedisBus, raw_redis: aioredis.Redis
) -> None:
    ids = [await redis_bus.append_usage(usage_lines(f"r{i}")) for i in range(4)]
    assert len(await redis_bus.read_usage("control", "a", 10, 100)) == 4
    await redis_bus.ack_usage("control", ids[:2])
    assert [e[0].decode() for e in await raw_redis.xrange("muxgate:usage")] == ids[2:]
    unread = await redis_bus.append_usage(usage_lines("r4"))
    await redis_bus.ack_usage("control", ids[2:])
    # The last delivered entry may stay; the unread one must.
    remaining = [e[0].decode() for e in await raw_redis.xrange("muxgate:usage")]
    assert remaining[-1] == unread
    assert set(remaining) <= {ids[3], unread}


async def test_entries_stay_until_every_group_has_acknowledged_them(
    redis_bus: RedisBus, raw_redis: aioredis.Redis
) -> None:
    ids = [await redis_bus.append_usage(usage_lines(f"r{i}")) for i in range(3)]
    await redis_bus.ensure_group("audit")
    assert len(await redis_bus.read_usage("control", "a", 10, 100)) == 3
    await redis_bus.ack_usage("control", ids)
    assert await raw_redis.xlen("muxgate:usage") == 3
    assert len(await redis_bus.read_usage("audit", "b", 10, 100)) == 3
    await redis_bus.ack_usage("audit", ids[:1])
    assert [e[0].decode() for e in await raw_redis.xrange("muxgate:usage")] == ids[1:]


async def test_a_redis_without_persistence_is_reported(
    redis_bus: RedisBus, raw_redis: aioredis.Redis
) -> None:
    warning = await redis_bus.durability_warning()
    assert warning is not None
    assert "appendonly" in warning
    await raw_redis.config_set("appendonly", "yes")
    assert await redis_bus.durability_warning() is None
