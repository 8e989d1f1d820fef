"""Where usage events go after the engine emits them: a bounded in-process buffer in front of a
sink. The buffer never drops: when it is full it flushes synchronously (backpressure), so a
finished request always leaves exactly one event behind.

Events travel as the JSON lines the engine wrote; this side only moves bytes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Protocol

from muxgate.wire.usage import UsageEvent, decode_usage_lines


class UsageSink(Protocol):
    def write(self, lines: bytes) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps events in memory: for tests and embedding."""

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    def write(self, lines: bytes) -> None:
        self.events.extend(decode_usage_lines(lines))

    def close(self) -> None:
        pass


class JsonlSink:
    """Appends the lines to a file; each flush is one `write`, so several worker processes can
    share the file (O_APPEND keeps lines whole)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab", buffering=0)
        self._lock = threading.Lock()

    def write(self, lines: bytes) -> None:
        view = memoryview(lines)
        with self._lock:
            while view:
                written = self._file.write(view)
                view = view[written or 0 :]

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_jsonl(path: str | Path) -> list[UsageEvent]:
    """The complete lines of a usage log; a line still being appended is left for the next read."""
    data = Path(path).read_bytes()
    return decode_usage_lines(data[: data.rfind(b"\n") + 1])


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
