"""Usage batches from a worker to the bus, never dropped.

Every batch is first appended to the worker's usage journal (`<worker>.wal` in the spill
directory: one write(2), so it survives a SIGKILL of the process; not fsynced, so a machine
crash can lose what the page cache held). Batches then wait in a queue bounded by bytes and go
out from a background task, coalesced into entries of about `entry_bytes`; the journal's header
says how far it has been sent. While the bus is down the task retries with back-off; a queue
that fills up, and whatever is unsent at shutdown, goes to a spill file. Spill files, and the
journals of workers that died, are replayed on start and on reconnect, by this worker or any
other sharing the directory: a file is claimed by renaming it, so two workers never send the
same file."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from muxgate.bus.base import BusUnavailable, UsageBus
from muxgate.bus.tasks import cancel_and_wait

log = logging.getLogger("muxgate.gateway.publisher")

MiB = 1024 * 1024
CLAIM = ".claimed-"
WAL = ".wal"
# The journal's header: the offset up to which its lines have reached the bus.
SENT = struct.Struct(">Q")


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
    """Whether `pid` runs; a killed worker nobody reaped yet (a zombie) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc here: the signal's answer stands
    return stat.rpartition(")")[2].split()[0] != "Z"


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
        wal_bytes: int = 8 * MiB,
        linger: float = 0.05,
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
        self.wal_bytes = wal_bytes
        self.linger = linger
        self._lingering: asyncio.TimerHandle | None = None
        self.wal_path = self.spill_dir / f"{worker_id}{WAL}"
        if self.wal_path.exists():  # left by an earlier process with this id (a reused pid)
            self._adopt(self.wal_path)
        self._wal = -1
        self._wal_end = self._wal_sent = SENT.size
        self._wal_failed = False
        self._open_wal()

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
            self._rewrite_wal()  # the spill file holds them now
            self._replay = True
        else:
            self._journal(lines)
            self._queue.append(lines)
            self._queued += len(lines)
        self._idle.clear()
        self._wake_soon()

    def _wake_soon(self) -> None:
        """Wake the sender `linger` seconds after the first unsent batch (at once with a full
        entry): the journal keeps usage safe meanwhile, and one entry then carries many
        requests, where sending each batch as it came would cost a Redis round trip apiece."""
        if self._queued >= self.entry_bytes or self.linger <= 0:
            self._wake.set()
            return
        if self._lingering is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._wake.set()
            return
        self._lingering = loop.call_later(self.linger, self._lingered)

    def _lingered(self) -> None:
        self._lingering = None
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
        if self._lingering is not None:
            self._lingering.cancel()
        if self._task is not None:
            self._task.cancel()
        batches = [self._inflight] if self._inflight is not None else []
        batches += self._queue
        self._inflight = None
        self._queue.clear()
        self._queued = 0
        if batches:
            self._spill(batches)
        if self._wal >= 0:
            os.close(self._wal)
            self._wal = -1
            self.wal_path.unlink(missing_ok=True)

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
                self._sent(len(self._inflight))
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

    # --- the usage journal --------------------------------------------------------------------

    def _open_wal(self) -> None:
        fd = os.open(self.wal_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, SENT.pack(SENT.size))
        self._wal, self._wal_end, self._wal_sent = fd, SENT.size, SENT.size

    def _journal(self, lines: bytes) -> None:
        """Append to the journal before the batch is queued (its answers are not sent yet)."""
        if self._wal < 0:
            return
        try:
            view = memoryview(lines)
            while view:
                written = os.pwrite(self._wal, view, self._wal_end)
                self._wal_end += written
                view = view[written:]
        except OSError as exc:
            # E.g. a full disk: the batch is still queued, only a kill could lose it now.
            if not self._wal_failed:
                self._wal_failed = True
                log.error("usage journal %s cannot be written (%s)", self.wal_path, exc)

    def _sent(self, size: int) -> None:
        """`size` more journal bytes reached the bus: move the header, or start the journal
        over once nothing in it is unsent (or its sent part outgrew `wal_bytes`)."""
        if self._wal < 0 or self._wal_failed:
            return
        self._wal_sent += size
        if self._wal_sent >= self._wal_end:
            # Cut first: a kill in between leaves a header past the end, which reads as empty.
            os.ftruncate(self._wal, SENT.size)
            os.pwrite(self._wal, SENT.pack(SENT.size), 0)
            self._wal_end = self._wal_sent = SENT.size
        elif self._wal_sent - SENT.size >= self.wal_bytes:
            self._rewrite_wal()
        else:
            os.pwrite(self._wal, SENT.pack(self._wal_sent), 0)

    def _rewrite_wal(self) -> None:
        """Replace the journal, atomically, with what is unsent in memory."""
        if self._wal < 0 or self._wal_failed:
            return
        unsent = b"".join([self._inflight or b"", *self._queue])
        temp = self.wal_path.with_name(f"{self.wal_path.name}.tmp")
        with temp.open("wb") as f:
            f.write(SENT.pack(SENT.size) + unsent)
        os.close(self._wal)
        temp.replace(self.wal_path)
        self._wal = os.open(self.wal_path, os.O_RDWR)
        self._wal_sent, self._wal_end = SENT.size, SENT.size + len(unsent)

    def _adopt(self, path: Path) -> None:
        """Turn the unsent part of a dead worker's journal into a spill file of ours."""
        claimed = path.with_name(f"{path.name.partition(CLAIM)[0]}{CLAIM}{os.getpid()}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            return  # another worker adopted it first
        data = claimed.read_bytes()
        sent = SENT.unpack(data[: SENT.size])[0] if len(data) >= SENT.size else len(data)
        unsent = data[max(sent, SENT.size) :]
        # A batch torn by the kill mid-write: its answers were never sent.
        unsent = unsent[: unsent.rfind(b"\n") + 1]
        if unsent:
            self._spill([unsent])
        claimed.unlink()

    def _orphaned_wals(self) -> Iterator[Path]:
        """Journals of dead workers on this host (or adoptions they died in)."""
        host = self.worker_id.rpartition(".")[0]
        for path in self.spill_dir.iterdir():
            name, claim, owner = path.name.partition(CLAIM)
            if not name.endswith(WAL) or path == self.wal_path:
                continue
            if claim:
                if owner.isdigit() and not _alive(int(owner)):
                    yield path
                continue
            worker_host, _, pid = name.removesuffix(WAL).rpartition(".")
            if worker_host == host and pid.isdigit() and not _alive(int(pid)):
                yield path

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
        for orphan in list(self._orphaned_wals()):
            self._adopt(orphan)
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
