"""The worker's usage publisher against a real redis-server that goes away and comes back:
whatever happens, every event written reaches the consumer."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bus.helpers import eventually, usage_lines
from muxgate.bus.redis import RedisBus
from muxgate.control.metering.consumer import UsageConsumer
from muxgate.gateway.publisher import UsagePublisher, split_lines
from muxgate.gateway.runtime import worker_id
from muxgate.wire import UsageEvent
from servers import RedisServer
from waiting import HANG


class Collected:
    """An idempotent handler, as the real one is: records keyed by request id."""

    def __init__(self) -> None:
        self.records: dict[str, UsageEvent] = {}
        self.deliveries = 0

    async def __call__(self, events: list[UsageEvent]) -> None:
        self.deliveries += len(events)
        for event in events:
            self.records[event.request_id] = event


@pytest.fixture
async def consumer(redis_bus: RedisBus) -> AsyncIterator[Collected]:
    collected = Collected()
    running = UsageConsumer(redis_bus, collected, consumer="c1", block_ms=100, retry_max=0.2)
    running.start()
    try:
        yield collected
    finally:
        await running.stop()


def publisher(bus: RedisBus, spill_dir: Path, worker_id: str, **options: int) -> UsagePublisher:
    return UsagePublisher(bus, spill_dir, worker_id, retry_max=0.1, fsync=False, **options)


def spill_files(spill_dir: Path) -> list[str]:
    """Spill files (and their claims): a running worker's own journal (`.wal`) is not one."""
    return sorted(p.name for p in spill_dir.iterdir() if not p.name.endswith(".wal"))


async def dead_pid() -> int:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


async def test_nothing_is_lost_while_redis_is_stopped(
    redis_server: RedisServer,
    redis_bus: RedisBus,
    consumer: Collected,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = publisher(redis_bus, tmp_path / "spill", "w1")
    worker.start()
    expected = {f"before-{i}" for i in range(10)}
    for i in range(10):
        worker.write(usage_lines(f"before-{i}"))
    await eventually(lambda: set(consumer.records) == expected, within=HANG)
    caplog.set_level(logging.INFO, logger="muxgate.gateway.publisher")
    redis_server.stop()
    for i in range(200):
        worker.write(usage_lines(f"during-{i}", f"during-{i}-b"))
        expected |= {f"during-{i}", f"during-{i}-b"}
        if i % 20 == 0:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    assert worker.queued_bytes > 0
    redis_server.start()
    await eventually(lambda: set(consumer.records) == expected, within=HANG)
    assert await worker.flush(wait_s=HANG)
    await worker.aclose()
    assert spill_files(tmp_path / "spill") == []
    messages = [r.getMessage() for r in caplog.records if r.name == "muxgate.gateway.publisher"]
    assert sum("unreachable" in m for m in messages) == 1, messages  # once per outage
    assert sum("reachable again" in m for m in messages) == 1, messages


async def test_a_full_queue_spills_to_disk_and_is_replayed(
    redis_server: RedisServer, redis_bus: RedisBus, consumer: Collected, tmp_path: Path
) -> None:
    spill_dir = tmp_path / "spill"
    worker = publisher(redis_bus, spill_dir, "w1", capacity_bytes=4096)
    worker.start()
    redis_server.stop()
    expected = {f"r{i}" for i in range(40)}
    for i in range(40):
        worker.write(usage_lines(f"r{i}"))
    assert worker.queued_bytes <= 4096
    assert spill_files(spill_dir), "the queue should have spilled"
    redis_server.start()
    await eventually(lambda: set(consumer.records) == expected, within=HANG)
    assert await worker.flush(wait_s=HANG)
    assert spill_files(spill_dir) == []
    await worker.aclose()


async def test_closing_with_redis_down_leaves_files_a_new_publisher_replays(
    redis_server: RedisServer, redis_bus: RedisBus, consumer: Collected, tmp_path: Path
) -> None:
    spill_dir = tmp_path / "spill"
    first = publisher(redis_bus, spill_dir, "w1")
    first.start()
    redis_server.stop()
    for i in range(5):
        first.write(usage_lines(f"r{i}"))
    await asyncio.sleep(0.1)
    await first.aclose(wait_s=0.2)
    first.write(usage_lines("after-close"))  # a late batch is spilled too
    assert len(spill_files(spill_dir)) == 2
    redis_server.start()
    second = publisher(redis_bus, spill_dir, "w2")
    second.start()
    expected = {f"r{i}" for i in range(5)} | {"after-close"}
    await eventually(lambda: set(consumer.records) == expected, within=HANG)
    assert await second.flush(wait_s=HANG)
    assert spill_files(spill_dir) == []
    await second.aclose()


async def test_two_workers_never_replay_the_same_file(
    redis_bus: RedisBus, raw_redis: aioredis.Redis, tmp_path: Path
) -> None:
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    for i in range(30):
        (spill_dir / f"old-{i:06d}.jsonl").write_bytes(usage_lines(f"r{i}"))
    workers = [publisher(redis_bus, spill_dir, f"w{n}") for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        assert await worker.flush(wait_s=HANG)
        await worker.aclose()
    entries = await raw_redis.xrange("muxgate:usage")
    assert sorted(fields[b"lines"] for _, fields in entries) == sorted(
        usage_lines(f"r{i}") for i in range(30)
    )
    assert spill_files(spill_dir) == []


async def test_a_file_claimed_by_a_dead_process_is_taken_over(
    redis_bus: RedisBus, consumer: Collected, tmp_path: Path
) -> None:
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    dead = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    (spill_dir / f"w9-000001.jsonl.claimed-{dead.stdout.strip()}").write_bytes(usage_lines("x"))
    worker = publisher(redis_bus, spill_dir, "w1")
    worker.start()
    await eventually(lambda: set(consumer.records) == {"x"}, within=HANG)
    assert await worker.flush(wait_s=HANG)
    assert spill_files(spill_dir) == []
    await worker.aclose()


async def test_batches_are_coalesced_into_few_entries(
    redis_bus: RedisBus, raw_redis: aioredis.Redis, tmp_path: Path
) -> None:
    worker = publisher(redis_bus, tmp_path / "spill", "w1", entry_bytes=64 * 1024)
    for i in range(300):
        worker.write(usage_lines(f"r{i}"))  # ~1 KiB each
    worker.start()
    assert await worker.flush(wait_s=HANG)
    entries = await raw_redis.xrange("muxgate:usage")
    assert 1 < len(entries) <= 10
    assert all(len(fields[b"lines"]) <= 64 * 1024 for _, fields in entries)
    assert b"".join(fields[b"lines"] for _, fields in entries) == b"".join(
        usage_lines(f"r{i}") for i in range(300)
    )
    await worker.aclose()


def test_split_lines_cuts_on_line_ends() -> None:
    data = b"aaaa\nbb\ncccccccccc\nd\n"
    assert list(split_lines(data, 8)) == [b"aaaa\nbb\n", b"cccccccccc\n", b"d\n"]
    assert b"".join(split_lines(data, 3)) == data
    assert list(split_lines(b"", 8)) == []


async def test_a_killed_workers_journal_is_sent_by_the_next_worker_without_repeats(
    redis_server: RedisServer, redis_bus: RedisBus, consumer: Collected, tmp_path: Path
) -> None:
    spill_dir = tmp_path / "spill"
    host = worker_id().rpartition(".")[0]
    killed = publisher(redis_bus, spill_dir, f"{host}.{await dead_pid()}")
    killed.start()
    sent = {f"sent-{i}" for i in range(5)}
    for request_id in sorted(sent):
        killed.write(usage_lines(request_id))
    await eventually(lambda: set(consumer.records) == sent, within=3)
    assert await killed.flush(wait_s=1)
    redis_server.stop()
    unsent = {f"unsent-{i}" for i in range(5)}
    for request_id in sorted(unsent):
        killed.write(usage_lines(request_id))
    # The kill: the task is gone, nothing is closed or spilled; a batch was torn mid-write.
    assert killed._task is not None
    killed._task.cancel()
    with killed.wal_path.open("ab") as wal:
        wal.write(b'{"request_id": "torn')
    redis_server.start()
    deliveries = consumer.deliveries
    successor = publisher(redis_bus, spill_dir, worker_id())
    successor.start()
    await eventually(lambda: set(consumer.records) == sent | unsent, within=5)
    assert await successor.flush(wait_s=1)
    assert consumer.deliveries - deliveries == len(unsent), "sent usage was sent again"
    assert spill_files(spill_dir) == []
    assert not killed.wal_path.exists()
    await successor.aclose()


async def test_the_journal_holds_only_what_is_unsent(
    redis_server: RedisServer, redis_bus: RedisBus, consumer: Collected, tmp_path: Path
) -> None:
    worker = publisher(redis_bus, tmp_path / "spill", "w1")
    worker.start()
    header = 8
    worker.write(usage_lines("a"))
    assert worker.wal_path.stat().st_size == header + len(usage_lines("a"))  # before any send
    await eventually(lambda: set(consumer.records) == {"a"}, within=3)
    assert await worker.flush(wait_s=1)
    assert worker.wal_path.stat().st_size == header
    await worker.aclose()
    assert not worker.wal_path.exists()
