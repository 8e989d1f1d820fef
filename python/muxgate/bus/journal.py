"""The usage stream of embedded mode: an append-only journal file plus a committed offset, so
usage written before a process kill is read again after the restart.

Records are `length, crc32, payload`; a torn record at the tail (a kill mid-write) is cut off on
open. Everything before the committed offset is acknowledged. Entry ids are `epoch-offset`,
and the epoch changes whenever the journal is compacted, so an old id never acks a new record."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from muxgate.bus.base import DeadLetter, UsageEntry

HEADER = struct.Struct(">II")


class Committed(msgspec.Struct):
    epoch: int = 0
    offset: int = 0


@dataclass
class Delivery:
    end: int
    consumer: str
    at: float


def write_atomically(path: Path, data: bytes, fsync: bool) -> None:
    """Replace `path` with `data`: a reader (or a restart) sees the old or the new whole file."""
    temp = path.with_name(f"{path.name}.tmp")
    with temp.open("wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    temp.replace(path)


class UsageJournal:
    """One consumer group over a journal file; safe to call from several threads."""

    def __init__(self, directory: str | Path, *, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "usage.journal"
        self.offset_path = self.directory / "usage.offset"
        self.dead_path = self.directory / "usage.dead.jsonl"
        self.fsync = fsync
        self.group: str | None = None
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise RuntimeError(f"{self.path} is in use by another process") from None
        committed = Committed()
        if self.offset_path.exists():
            committed = msgspec.json.decode(self.offset_path.read_bytes(), type=Committed)
        if committed.offset > os.fstat(self._fd).st_size:
            # Not a state this class writes; replaying everything is the safe reading of it.
            committed = Committed(committed.epoch + 1, 0)
        self._epoch = committed.epoch
        self._end = self._recover(committed.offset)
        self._committed = committed.offset
        self._read = self._committed
        self._pending: dict[int, Delivery] = {}
        self._acked: dict[int, int] = {}
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def _recover(self, start: int) -> int:
        """The end of the last whole record; a torn tail is truncated."""
        size = os.fstat(self._fd).st_size
        offset = start
        while offset + HEADER.size <= size:
            length, crc = HEADER.unpack(os.pread(self._fd, HEADER.size, offset))
            payload_end = offset + HEADER.size + length
            if payload_end > size:
                break
            if zlib.crc32(os.pread(self._fd, length, offset + HEADER.size)) != crc:
                break
            offset = payload_end
        if offset != size:
            os.ftruncate(self._fd, offset)
        return offset

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    # --- producer ----------------------------------------------------------------------------

    def append(self, batch: bytes) -> str:
        record = HEADER.pack(len(batch), zlib.crc32(batch)) + batch
        with self._lock:
            offset = self._end
            view = memoryview(record)
            while view:
                view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fsync(self._fd)
            self._end += len(record)
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_wake, future)
        return f"{self._epoch}-{offset}"

    # --- consumer ----------------------------------------------------------------------------

    def _bind(self, group: str) -> None:
        if self.group is None:
            self.group = group
        elif group != self.group:
            raise ValueError(f"the local usage journal serves one group ({self.group!r})")

    def _entry(self, offset: int) -> tuple[UsageEntry, int]:
        length, _ = HEADER.unpack(os.pread(self._fd, HEADER.size, offset))
        lines = os.pread(self._fd, length, offset + HEADER.size)
        return UsageEntry(id=f"{self._epoch}-{offset}", lines=lines), offset + HEADER.size + length

    async def read(
        self, group: str, consumer: str, count: int, block_ms: int, pending: bool
    ) -> list[UsageEntry]:
        self._bind(group)
        if pending:
            with self._lock:
                mine = sorted(o for o, d in self._pending.items() if d.consumer == consumer)
                return [self._entry(o)[0] for o in mine[:count]]
        deadline = time.monotonic() + block_ms / 1000
        while True:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            with self._lock:
                entries: list[UsageEntry] = []
                now = time.monotonic()
                while self._read < self._end and len(entries) < count:
                    entry, end = self._entry(self._read)
                    self._pending[self._read] = Delivery(end, consumer, now)
                    self._read = end
                    entries.append(entry)
                if entries or block_ms <= 0:
                    return entries
                self._waiters.append((loop, future))
            try:
                await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                with self._lock:
                    if (loop, future) in self._waiters:
                        self._waiters.remove((loop, future))
                return []

    def ack(self, group: str, ids: list[str]) -> None:
        self._bind(group)
        with self._lock:
            for entry_id in ids:
                epoch, _, offset_text = entry_id.partition("-")
                if int(epoch) != self._epoch:
                    continue
                delivery = self._pending.pop(int(offset_text), None)
                if delivery is not None:
                    self._acked[int(offset_text)] = delivery.end
            moved = False
            while self._committed in self._acked:
                self._committed = self._acked.pop(self._committed)
                moved = True
            if not moved:
                return
            if self._committed == self._end and not self._pending:
                self._compact()
            else:
                self._write_committed()

    def _write_committed(self) -> None:
        data = msgspec.json.encode(Committed(self._epoch, self._committed))
        write_atomically(self.offset_path, data, self.fsync)

    def _compact(self) -> None:
        """Everything is acknowledged: start the journal over. The offset goes to 0 before the
        file is cut, so a kill in between replays acknowledged records (harmless: consumers are
        idempotent) rather than skipping new ones."""
        self._epoch += 1
        self._committed = self._read = self._end = 0
        self._acked.clear()
        self._write_committed()
        os.ftruncate(self._fd, 0)

    def claim_stale(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[UsageEntry]:
        self._bind(group)
        with self._lock:
            now = time.monotonic()
            stale = sorted(
                o for o, d in self._pending.items() if (now - d.at) * 1000 >= min_idle_ms
            )[:count]
            for offset in stale:
                delivery = self._pending[offset]
                delivery.consumer, delivery.at = consumer, now
            return [self._entry(o)[0] for o in stale]

    # --- dead letters ------------------------------------------------------------------------

    def dead_letter(self, group: str, entry: str, lines: bytes, reason: str) -> None:
        record = msgspec.json.encode(DeadLetter(entry=entry, lines=lines, reason=reason))
        with self.dead_path.open("ab") as f:
            f.write(record + b"\n")
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        self.ack(group, [entry])

    def dead_letters(self, count: int) -> list[DeadLetter]:
        if not self.dead_path.exists():
            return []
        lines = self.dead_path.read_bytes().splitlines()[:count]
        return [msgspec.json.decode(line, type=DeadLetter) for line in lines if line]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
