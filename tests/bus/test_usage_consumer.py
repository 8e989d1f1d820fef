"""The metering consumer on both buses: acknowledgement only after the handler, re-delivery of
what a dead or failing consumer left behind, and dead letters for undecodable lines."""

from __future__ import annotations

import asyncio

import pytest

from bus.helpers import eventually, usage_lines
from muxgate.bus import UsageBus
from muxgate.control.metering.consumer import UsageConsumer
from muxgate.wire import UsageEvent
from waiting import HANG


def ids(events: list[UsageEvent]) -> list[str]:
    return [e.request_id for e in events]


async def test_consumer_killed_before_ack_loses_nothing(usage_bus: UsageBus) -> None:
    for i in range(6):
        await usage_bus.append_usage(usage_lines(f"r{i}a", f"r{i}b"))
    expected = {f"r{i}{s}" for i in range(6) for s in "ab"}
    got_batch = asyncio.Event()

    async def stuck(events: list[UsageEvent]) -> None:
        got_batch.set()
        await asyncio.Event().wait()  # killed before it returns: nothing acknowledged

    dying = UsageConsumer(usage_bus, stuck, consumer="dying", count=4, block_ms=50)
    dying.start()
    await asyncio.wait_for(got_batch.wait(), 2)
    await dying.stop()

    received: list[UsageEvent] = []

    async def collect(events: list[UsageEvent]) -> None:
        received.extend(events)

    heir = UsageConsumer(usage_bus, collect, consumer="heir", block_ms=50, claim_min_idle_ms=200)
    heir.start()
    try:
        await eventually(lambda: set(ids(received)) == expected, within=HANG)
        # Nothing is left pending: a third consumer finds nothing to claim.
        await asyncio.sleep(0.25)
        assert await usage_bus.claim_stale_usage("control", "third", 200, 100) == []
    finally:
        await heir.stop()
    assert len(received) == len(expected)  # each once: 4 entries claimed, 2 read fresh


async def test_restart_under_the_same_name_reads_its_pending_entries_first(
    usage_bus: UsageBus,
) -> None:
    await usage_bus.append_usage(usage_lines("a", "b"))
    assert len(await usage_bus.read_usage("control", "c1", 10, 100)) == 1  # then "crashed"
    received: list[UsageEvent] = []

    async def collect(events: list[UsageEvent]) -> None:
        received.extend(events)

    consumer = UsageConsumer(usage_bus, collect, consumer="c1", block_ms=50)
    consumer.start()
    try:
        await eventually(lambda: ids(received) == ["a", "b"], within=HANG)
    finally:
        await consumer.stop()


async def test_a_failing_handler_gets_the_same_events_again(usage_bus: UsageBus) -> None:
    await usage_bus.append_usage(usage_lines("a", "b"))
    calls: list[list[str]] = []

    async def flaky(events: list[UsageEvent]) -> None:
        calls.append(ids(events))
        if len(calls) < 3:
            raise RuntimeError("database unavailable")

    consumer = UsageConsumer(usage_bus, flaky, block_ms=50, retry_initial=0.02)
    consumer.start()
    try:
        await eventually(lambda: len(calls) >= 3, within=HANG)
        await usage_bus.append_usage(usage_lines("c"))
        await eventually(lambda: calls[-1] == ["c"], within=HANG)
    finally:
        await consumer.stop()
    assert calls[:3] == [["a", "b"]] * 3
    assert await usage_bus.read_usage("control", consumer.consumer, 10, 0, pending=True) == []


async def test_malformed_lines_go_to_dead_letters_and_do_not_wedge(usage_bus: UsageBus) -> None:
    bad = b'{"request_id": "broken"}\n'
    garbage = b"\xff\xfe not json\n"
    await usage_bus.append_usage(usage_lines("a") + bad + usage_lines("b") + garbage)
    await usage_bus.append_usage(usage_lines("c"))
    received: list[UsageEvent] = []

    async def collect(events: list[UsageEvent]) -> None:
        received.extend(events)

    consumer = UsageConsumer(usage_bus, collect, block_ms=50)
    consumer.start()
    try:
        await eventually(lambda: sorted(ids(received)) == ["a", "b", "c"], within=HANG)
        dead = await usage_bus.dead_usage()
        assert len(dead) == 1
        assert dead[0].lines == bad + garbage
        assert "required field" in dead[0].reason
        await asyncio.sleep(0.1)
        assert await usage_bus.read_usage("control", consumer.consumer, 10, 0, pending=True) == []
    finally:
        await consumer.stop()


@pytest.mark.parametrize("usage_bus", ["redis"], indirect=True)
async def test_consumer_waits_out_a_redis_outage(
    usage_bus: UsageBus, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("redis_server")
    received: list[UsageEvent] = []

    async def collect(events: list[UsageEvent]) -> None:
        received.extend(events)

    consumer = UsageConsumer(usage_bus, collect, block_ms=50, retry_max=0.1)
    consumer.start()
    try:
        await usage_bus.append_usage(usage_lines("a"))
        await eventually(lambda: ids(received) == ["a"], within=HANG)
        server.stop()
        await asyncio.sleep(0.3)
        server.start()
        await usage_bus.append_usage(usage_lines("b"))
        await eventually(lambda: ids(received) == ["a", "b"], within=HANG)
    finally:
        await consumer.stop()
