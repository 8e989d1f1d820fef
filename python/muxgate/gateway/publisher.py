"""Usage batches from a worker to the bus, never dropped.

Batches wait in a queue bounded by bytes and go out from a background task, coalesced into
entries of about `entry_bytes`. While the bus is down the task retries with back-off; a queue
that fills up, and whatever is unsent at shutdown, goes to a spill file. Spill files are replayed
on start and on reconnect, by this worker or any other sharing the directory: a file is claimed by
renaming it, so two workers never send the same file."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from muxgate.bus.base import BusUnavailable, UsageBus
from muxgate.bus.tasks import cancel_and_wait

log = logging.getLogger("muxgate.gateway.publisher")

MiB = 1024 * 1024
CLAIM = ".claimed-"


def split_lines(data: bytes, size: int) -> Iterator[bytes]:
    """`data` in pieces of at most `size` bytes that end on a line (a longer line goes alone)."""
    start = 0
    while start < len(data):
        end = start + size
        if end < len(data):
            cut = data.rfind(b"\n", start, end)
            end = cut + 1 if cut >= start else data.find(b"\n", end) + 1 or len(data)
        yield data[start:end]
        start = end


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class UsagePublisher:
    """A `UsageSink` (see `gateway.metering`) that publishes to a `UsageBus`."""

    def __init__(
        self,
        bus: UsageBus,
        spill_dir: str | Path,
        worker_id: str,
        *,
        capacity_bytes: int = 64 * MiB,
        entry_bytes: int = MiB,
        retry_initial: float = 0.05,
        retry_max: float = 2.0,
        fsync: bool = True,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.]+", worker_id):
            raise ValueError("worker_id may hold letters, digits, '_' and '.' only")
        self.bus = bus
        self.spill_dir = Path(spill_dir)
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        self.worker_id = worker_id
        self.capacity_bytes = capacity_bytes
        self.entry_bytes = entry_bytes
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.fsync = fsync
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._inflight: bytes | None = None
        self._replay = True
        self._closed = False
        self._reachable = True
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._down = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._seq = self._last_seq()

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start sending; `loop` may be one that is not running yet."""
        loop = loop or asyncio.get_running_loop()
        self._task = loop.create_task(self._run())

    def write(self, lines: bytes) -> None:
        if not lines:
            return
        if not lines.endswith(b"\n"):
            lines += b"\n"
        if self._closed:
            self._spill([lines])
            return
        if self._queued + len(lines) > self.capacity_bytes:
            batches = [*self._queue, lines]
            self._queue.clear()
            self._queued = 0
            self._spill(batches)
            self._replay = True
        else:
            self._queue.append(lines)
            self._queued += len(lines)
        self._idle.clear()
        self._wake.set()

    async def flush(self, wait_s: float) -> bool:
        """True once everything written (and every spill file seen) has reached the bus."""
        try:
            await asyncio.wait_for(self._idle.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    async def aclose(self, wait_s: float = 5.0) -> None:
        """Send what can be sent within `wait_s` seconds, then spill the rest. Once the bus is
        found unreachable nothing more is waited for: during an outage a shutdown spills at
        once instead of holding the worker (and the deploy) for `wait_s`."""
        if not self._closed:
            idle = asyncio.ensure_future(self._idle.wait())
            down = asyncio.ensure_future(self._down.wait())
            try:
                await asyncio.wait(
                    {idle, down}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                idle.cancel()
                down.cancel()
        task = self._task
        self.close()
        if task is not None:
            await cancel_and_wait([task])

    def close(self) -> None:
        """Stop sending and spill whatever is unsent (synchronous, for `UsageSink`)."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        batches = [self._inflight] if self._inflight is not None else []
        batches += self._queue
        self._inflight = None
        self._queue.clear()
        self._queued = 0
        if batches:
            self._spill(batches)

    # --- sending -----------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.retry_initial
        while not self._closed:  # (a cancellation can be lost, see `bus.tasks`)
            try:
                if self._replay:
                    self._replay = False
                    try:
                        if await self._replay_spills():
                            self._reached()
                    except BusUnavailable:
                        self._replay = True
                        raise
                if self._inflight is None:
                    if not self._queue:
                        if not self._replay:
                            self._idle.set()
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                    self._inflight = self._take_entry()
                await self.bus.append_usage(self._inflight)
                self._inflight = None
                self._reached()
                delay = self.retry_initial
            except BusUnavailable as exc:
                self._lost(exc)
            except Exception:
                # E.g. a spill file that cannot be read: keep sending the rest.
                log.exception("usage publisher failed; retrying")
            else:
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    def _take_entry(self) -> bytes:
        parts = [self._queue.popleft()]
        size = len(parts[0])
        while self._queue and size + len(self._queue[0]) <= self.entry_bytes:
            size += len(self._queue[0])
            parts.append(self._queue.popleft())
        self._queued -= size
        return b"".join(parts)

    def _lost(self, exc: BusUnavailable) -> None:
        self._down.set()
        if self._reachable:
            self._reachable = False
            log.warning("usage bus unreachable (%s); buffering usage", exc)

    def _reached(self) -> None:
        self._down.clear()
        if not self._reachable:
            self._reachable = True
            self._replay = True  # files spilled during the outage, here or by other workers
            log.info("usage bus reachable again; sending buffered usage")

    # --- spill files -------------------------------------------------------------------------

    def _last_seq(self) -> int:
        pattern = re.compile(rf"{re.escape(self.worker_id)}-(\d+)\.jsonl")
        seqs = [int(m.group(1)) for p in self.spill_dir.iterdir() if (m := pattern.match(p.name))]
        return max(seqs, default=0)

    def _spill(self, batches: list[bytes]) -> None:
        data = b"".join(batches)
        temp = self.spill_dir / f"{self.worker_id}.{os.getpid()}.tmp"
        with temp.open("wb") as f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        while True:
            self._seq += 1
            path = self.spill_dir / f"{self.worker_id}-{self._seq:06d}.jsonl"
            try:
                os.link(temp, path)  # never replaces an existing spill file
            except FileExistsError:
                continue
            break
        temp.unlink()
        log.warning("spilled %d bytes of usage to %s", len(data), path)

    def _claim(self) -> Iterator[tuple[Path, Path]]:
        """Spill files this worker now owns, as (claimed path, original path)."""
        mine = f"{CLAIM}{os.getpid()}"
        for path in sorted(self.spill_dir.iterdir()):
            name, claim, owner = path.name.partition(CLAIM)
            if not name.endswith(".jsonl"):
                continue
            if claim and (not owner.isdigit() or _alive(int(owner))):
                continue  # being replayed by a live process
            claimed = path.with_name(name + mine)
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another worker claimed it first
            yield claimed, path.with_name(name)

    async def _replay_spills(self) -> int:
        """Send every spill file that can be claimed; the number of entries sent."""
        entries = 0
        for claimed, original in self._claim():
            data = await asyncio.to_thread(claimed.read_bytes)
            chunks = list(split_lines(data, self.entry_bytes))
            sent = 0
            try:
                for chunk in chunks:
                    await self.bus.append_usage(chunk)
                    sent += 1
                    entries += 1
            finally:
                if sent < len(chunks):
                    if sent:
                        # Keep only what is unsent, so a retry does not repeat what went out.
                        rest = self.spill_dir / f".{claimed.name}.rest"
                        rest.write_bytes(b"".join(chunks[sent:]))
                        rest.replace(claimed)
                    claimed.rename(original)
            claimed.unlink()
            log.info("replayed %d bytes of spilled usage from %s", len(data), original.name)
        return entries
