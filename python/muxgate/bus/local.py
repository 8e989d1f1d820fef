"""The bus of embedded mode, inside one process: snapshots in memory (the control plane compiles
them again on start), usage in a journal file so a kill loses nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from pathlib import Path

from muxgate.bus.base import BusUnavailable, DeadLetter, UsageEntry
from muxgate.bus.journal import UsageJournal


class LocalBus:
    """Both bus interfaces without Redis; `directory` holds the usage journal."""

    def __init__(self, directory: str | Path, *, keep_versions: int = 5, fsync: bool = False):
        self.keep_versions = keep_versions
        self.journal = UsageJournal(directory, fsync=fsync)
        self._lock = threading.Lock()
        self._snapshots: dict[int, bytes] = {}
        self._current: int | None = None
        self._listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[int]]] = set()

    def close(self) -> None:
        self.journal.close()

    # --- routing snapshots -----------------------------------------------------------------

    async def publish_snapshot(self, version: int, data: bytes) -> bool:
        if version <= 0:
            raise ValueError("snapshot versions start at 1")
        with self._lock:
            if self._current is not None and version <= self._current:
                return False
            self._snapshots[version] = data
            self._current = version
            for old in sorted(self._snapshots)[: -self.keep_versions]:
                del self._snapshots[old]
            listeners = list(self._listeners)
        for loop, queue in listeners:
            loop.call_soon_threadsafe(queue.put_nowait, version)
        return True

    async def current_version(self) -> int | None:
        return self._current

    async def fetch_snapshot(self, version: int) -> bytes | None:
        with self._lock:
            return self._snapshots.get(version)

    async def version_hints(self) -> AsyncGenerator[int, None]:
        listener = (asyncio.get_running_loop(), asyncio.Queue[int]())
        with self._lock:
            self._listeners.add(listener)
            current = self._current
        try:
            if current is not None:
                yield current
            while True:
                yield await listener[1].get()
        finally:
            with self._lock:
                self._listeners.discard(listener)

    # --- usage journal -----------------------------------------------------------------------

    async def append_usage(self, batch: bytes) -> str:
        try:
            return self.journal.append(batch)
        except OSError as exc:  # a full disk: the publisher keeps the batch and retries
            raise BusUnavailable(f"usage journal: {exc}") from exc

    async def read_usage(
        self, group: str, consumer: str, count: int, block_ms: int, *, pending: bool = False
    ) -> list[UsageEntry]:
        return await self.journal.read(group, consumer, count, block_ms, pending)

    async def ack_usage(self, group: str, ids: list[str]) -> None:
        self.journal.ack(group, ids)

    async def claim_stale_usage(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[UsageEntry]:
        return self.journal.claim_stale(group, consumer, min_idle_ms, count)

    async def dead_letter_usage(self, group: str, entry: str, lines: bytes, reason: str) -> None:
        self.journal.dead_letter(group, entry, lines, reason)

    async def dead_usage(self, count: int = 100) -> list[DeadLetter]:
        return self.journal.dead_letters(count)
