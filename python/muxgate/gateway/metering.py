"""Where usage events go after the engine emits them: a bounded in-process queue in front of a
sink. The queue never drops: when it is full it flushes synchronously (backpressure), so a
finished request always leaves exactly one event behind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import msgspec

from muxgate.wire.usage import UsageEvent, decode_usage_batch


class UsageSink(Protocol):
    def write(self, events: Sequence[UsageEvent]) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps events in memory: for tests and embedding."""

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    def write(self, events: Sequence[UsageEvent]) -> None:
        self.events.extend(events)

    def close(self) -> None:
        pass


class JsonlSink:
    """Appends one JSON line per event; each batch is one `write`, so several worker processes
    can share the file (O_APPEND keeps lines whole)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab", buffering=0)
        self._encoder = msgspec.json.Encoder()
        self._lock = threading.Lock()

    def write(self, events: Sequence[UsageEvent]) -> None:
        payload = b"".join(self._encoder.encode(e) + b"\n" for e in events)
        with self._lock:
            self._file.write(payload)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_jsonl(path: str | Path) -> list[UsageEvent]:
    decoder = msgspec.json.Decoder(UsageEvent)
    with Path(path).open("rb") as f:
        return [decoder.decode(line) for line in f if line.strip()]


class Meter:
    """Collects engine batches and hands them to the sink every `flush_interval` seconds."""

    def __init__(
        self,
        sink: UsageSink,
        loop: asyncio.AbstractEventLoop,
        capacity: int = 100_000,
        flush_interval: float = 0.05,
    ) -> None:
        self.sink = sink
        self.capacity = capacity
        self.flush_interval = flush_interval
        self._loop = loop
        self._queue: list[UsageEvent] = []
        self._scheduled: asyncio.TimerHandle | None = None

    def publish(self, batch: bytes) -> None:
        self._queue.extend(decode_usage_batch(batch))
        if len(self._queue) >= self.capacity:
            self.flush()
        elif self._scheduled is None:
            self._scheduled = self._loop.call_later(self.flush_interval, self.flush)

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if self._queue:
            events, self._queue = self._queue, []
            self.sink.write(events)

    def close(self) -> None:
        self.flush()
        self.sink.close()
