"""The bus between the control plane and gateway workers, as interfaces: Redis in production,
an in-process implementation in embedded mode. Callers see `BusUnavailable`, never a
transport's own exceptions, so outage handling is written once."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

import msgspec


class BusUnavailable(Exception):
    """The bus cannot be reached right now; the caller keeps its data and retries later."""


class UsageEntry(msgspec.Struct, frozen=True):
    """One stream entry: a batch of usage JSON lines, identified for acknowledgement."""

    id: str
    lines: bytes


class DeadLetter(msgspec.Struct, frozen=True):
    """Lines that could not be decoded, kept with the entry they came from and why."""

    entry: str
    lines: bytes
    reason: str


class SnapshotBus(Protocol):
    async def publish_snapshot(self, version: int, data: bytes) -> bool:
        """Store `data` as `version` and move the current pointer to it, unless the pointer is
        already at or past it. True when the pointer moved."""
        ...

    async def current_version(self) -> int | None: ...

    async def fetch_snapshot(self, version: int) -> bytes | None: ...

    def version_hints(self) -> AsyncGenerator[int, None]:
        """Versions worth checking: the current one on (re)subscription, then each published
        one. A hint may be lost; the iterator raises `BusUnavailable` when the link drops."""
        ...


class UsageBus(Protocol):
    async def append_usage(self, batch: bytes) -> str:
        """Append one batch of JSON lines as one entry; returns its id."""
        ...

    async def read_usage(
        self, group: str, consumer: str, count: int, block_ms: int, *, pending: bool = False
    ) -> list[UsageEntry]:
        """New entries for `consumer` (waiting up to `block_ms`), or with `pending` the entries
        already delivered to it and not yet acknowledged."""
        ...

    async def ack_usage(self, group: str, ids: list[str]) -> None: ...

    async def claim_stale_usage(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[UsageEntry]:
        """Take over entries delivered to any consumer but unacknowledged for `min_idle_ms`."""
        ...

    async def dead_letter_usage(self, group: str, entry: str, lines: bytes, reason: str) -> None:
        """Keep undecodable `lines` aside and acknowledge `entry`, as one step."""
        ...

    async def dead_usage(self, count: int = 100) -> list[DeadLetter]: ...
