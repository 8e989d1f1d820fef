"""Where usage events go after the engine emits them: straight to a sink (the `UsagePublisher`),
which journals them on disk before returning. The engine queues a request's usage before it
hands over the answer, and the worker takes the queue before it sends an answer, so an answer
never leaves before its usage is journaled.

Events travel as the JSON lines the engine wrote; this side only moves bytes."""

from __future__ import annotations

from typing import Protocol


class UsageSink(Protocol):
    def write(self, lines: bytes) -> None:
        """Take the batch; it is on disk (or in a spill file) when this returns."""
        ...

    def close(self) -> None: ...
