"""Where usage events go after the engine emits them: a short in-process buffer in front of a
sink (the `UsagePublisher`), so the engine's many small batches leave as a few large ones. The
buffer never drops: when it is full it flushes synchronously.

Events travel as the JSON lines the engine wrote; this side only moves bytes."""

from __future__ import annotations

import asyncio
from typing import Protocol


class UsageSink(Protocol):
    def write(self, lines: bytes) -> None: ...

    def close(self) -> None: ...


class Meter:
    """Collects engine batches and hands them to the sink every `flush_interval` seconds."""

    def __init__(
        self,
        sink: UsageSink,
        loop: asyncio.AbstractEventLoop,
        capacity_bytes: int = 64 * 1024 * 1024,
        flush_interval: float = 0.05,
    ) -> None:
        self.sink = sink
        self.capacity_bytes = capacity_bytes
        self.flush_interval = flush_interval
        self._loop = loop
        self._batches: list[bytes] = []
        self._size = 0
        self._scheduled: asyncio.TimerHandle | None = None

    def publish(self, batch: bytes) -> None:
        self._batches.append(batch)
        self._size += len(batch)
        if self._size >= self.capacity_bytes:
            self.flush()
        elif self._scheduled is None:
            self._scheduled = self._loop.call_later(self.flush_interval, self.flush)

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if self._batches:
            lines = b"".join(self._batches)
            self._batches, self._size = [], 0
            self.sink.write(lines)

    def close(self) -> None:
        self.flush()
        self.sink.close()
