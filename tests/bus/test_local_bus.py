"""The embedded-mode usage journal: what was appended survives a killed process, what was
acknowledged is not delivered again, and the file is reclaimed once everything is consumed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bus.helpers import usage_lines
from muxgate.bus import LocalBus
from muxgate.bus.journal import HEADER

KILLED_WRITER = """
import asyncio, os, signal, sys
from muxgate.bus import LocalBus

async def main(directory, count):
    bus = LocalBus(directory)
    for i in range(count):
        await bus.append_usage(b'{"n": %d}\\n' % i)
    entries = await bus.read_usage("control", "c1", 10, 0)
    await bus.ack_usage("control", [e.id for e in entries[:3]])
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_appended_usage_survives_a_killed_process(tmp_path: Path) -> None:
    directory = tmp_path / "bus"
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(directory), "50"],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr.decode()
    bus = LocalBus(directory)
    try:
        lines = [e.lines for e in await bus.read_usage("control", "c2", 1000, 0)]
    finally:
        bus.close()
    # The three acknowledged before the kill are not delivered again; the rest are.
    assert lines == [b'{"n": %d}\n' % i for i in range(3, 50)]


async def test_a_torn_record_at_the_tail_is_cut_off(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    await bus.append_usage(usage_lines("a"))
    await bus.append_usage(usage_lines("b"))
    bus.close()
    journal = tmp_path / "usage.journal"
    whole = journal.stat().st_size
    with journal.open("ab") as f:  # a kill in the middle of a write
        f.write(HEADER.pack(1000, 0) + b'{"request_id": "c"')
    bus = LocalBus(tmp_path)
    try:
        assert journal.stat().st_size == whole
        entries = await bus.read_usage("control", "c1", 10, 0)
        assert [e.lines for e in entries] == [usage_lines("a"), usage_lines("b")]
        await bus.append_usage(usage_lines("d"))
        assert [e.lines for e in await bus.read_usage("control", "c1", 10, 0)] == [usage_lines("d")]
    finally:
        bus.close()


async def test_unacknowledged_entries_are_delivered_again_after_reopen(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    ids = [await bus.append_usage(usage_lines(f"r{i}")) for i in range(4)]
    await bus.read_usage("control", "c1", 10, 0)
    await bus.ack_usage("control", [ids[0], ids[2]])  # r1 still pending: r2 cannot commit yet
    bus.close()
    bus = LocalBus(tmp_path)
    try:
        entries = await bus.read_usage("control", "c1", 10, 0)
        assert [e.lines for e in entries] == [usage_lines(f"r{i}") for i in (1, 2, 3)]
    finally:
        bus.close()


async def test_journal_is_compacted_when_everything_is_acknowledged(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    try:
        old = [await bus.append_usage(usage_lines(f"r{i}")) for i in range(3)]
        entries = await bus.read_usage("control", "c1", 10, 0)
        await bus.ack_usage("control", [e.id for e in entries])
        assert (tmp_path / "usage.journal").stat().st_size == 0
        new = await bus.append_usage(usage_lines("n"))
        assert new not in old  # same offset, new epoch
        await bus.ack_usage("control", old)  # stale ids acknowledge nothing
        assert [e.id for e in await bus.read_usage("control", "c1", 10, 0)] == [new]
    finally:
        bus.close()
    bus = LocalBus(tmp_path)
    try:
        assert [e.lines for e in await bus.read_usage("control", "c1", 10, 0)] == [usage_lines("n")]
    finally:
        bus.close()


async def test_blocking_read_wakes_on_append(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    try:
        reader = asyncio.create_task(bus.read_usage("control", "c1", 10, 2000))
        await asyncio.sleep(0.05)
        assert not reader.done()
        await bus.append_usage(usage_lines("a"))
        entries = await asyncio.wait_for(reader, 1)
        assert [e.lines for e in entries] == [usage_lines("a")]
        assert await bus.read_usage("control", "c1", 10, 50) == []
    finally:
        bus.close()


def test_one_process_owns_the_journal(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    try:
        code = f"from muxgate.bus import LocalBus; LocalBus({str(tmp_path)!r})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
        assert proc.returncode != 0
        assert b"in use by another process" in proc.stderr
    finally:
        bus.close()


async def test_the_journal_serves_one_group(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    try:
        await bus.read_usage("control", "c1", 10, 0)
        with pytest.raises(ValueError, match="one group"):
            await bus.read_usage("other", "c1", 10, 0)
    finally:
        bus.close()
