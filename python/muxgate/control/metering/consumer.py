"""Reads usage from the bus through a consumer group and hands it to the metering handler.

An entry is acknowledged only after the handler returned, so a crash or a failing handler leaves
it pending: this consumer re-reads its own pending entries, and entries left by a consumer that
died are claimed once idle for `claim_min_idle_ms`. Delivery is therefore at-least-once and the
handler must be idempotent on the request id. Undecodable lines go to the dead-letter stream."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

import msgspec

from muxgate.bus.base import BusUnavailable, UsageBus, UsageEntry
from muxgate.bus.tasks import cancel_and_wait
from muxgate.wire.usage import UsageEvent, decode_usage_lines

log = logging.getLogger("muxgate.control.metering")

Handler = Callable[[list[UsageEvent]], Awaitable[None]]


class Decoded(msgspec.Struct):
    """The events of a set of entries; `bad` maps an entry id to its undecodable lines."""

    events: list[UsageEvent]
    clean: list[str]
    bad: dict[str, tuple[bytes, str]]


def decode_entries(entries: list[UsageEntry]) -> Decoded:
    decoded = Decoded(events=[], clean=[], bad={})
    for entry in entries:
        try:
            decoded.events.extend(decode_usage_lines(entry.lines))
            decoded.clean.append(entry.id)
            continue
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        bad_lines: list[bytes] = []
        reasons: list[str] = []
        for line in entry.lines.splitlines(keepends=True):
            try:
                decoded.events.extend(decode_usage_lines(line))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                bad_lines.append(line)
                reasons.append(str(exc))
        decoded.bad[entry.id] = (b"".join(bad_lines), "; ".join(reasons))
    return decoded


class UsageConsumer:
    """One member of a consumer group; run several (distinct names) to share the load."""

    def __init__(
        self,
        bus: UsageBus,
        handler: Handler,
        group: str = "control",
        consumer: str | None = None,
        *,
        count: int = 64,
        block_ms: int = 1000,
        claim_min_idle_ms: int = 30_000,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
    ) -> None:
        self.bus = bus
        self.handler = handler
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.count = count
        self.block_ms = block_ms
        self.claim_min_idle_ms = claim_min_idle_ms
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._task: asyncio.Task[None] | None = None
        self._reachable = True
        self._next_claim = 0.0

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        loop = loop or asyncio.get_running_loop()
        self._task = loop.create_task(self.run())

    async def stop(self) -> None:
        """Stop at once; entries being handled stay pending and are delivered again later."""
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def run(self) -> None:
        delay = self.retry_initial
        backlog = True  # after a restart under the same name, its pending entries come first
        while True:
            try:
                stale = await self._claim_stale()
                if stale:
                    handled = await self.process(stale)
                elif backlog:
                    pending = await self.bus.read_usage(
                        self.group, self.consumer, self.count, 0, pending=True
                    )
                    backlog = bool(pending)
                    handled = await self.process(pending) if pending else True
                else:
                    entries = await self.bus.read_usage(
                        self.group, self.consumer, self.count, self.block_ms
                    )
                    handled = await self.process(entries) if entries else True
                self._reached()
            except BusUnavailable as exc:
                self._lost(exc)
                handled = False
            if handled:
                delay = self.retry_initial
                continue
            backlog = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    async def _claim_stale(self) -> list[UsageEntry]:
        """Stale entries, checked a few times per idle period rather than on every read."""
        now = asyncio.get_running_loop().time()
        if now < self._next_claim:
            return []
        stale = await self.bus.claim_stale_usage(
            self.group, self.consumer, self.claim_min_idle_ms, self.count
        )
        if len(stale) < self.count:
            self._next_claim = now + self.claim_min_idle_ms / 4000
        return stale

    async def process(self, entries: list[UsageEntry]) -> bool:
        """Handle and acknowledge `entries`; False (nothing acknowledged) if the handler failed."""
        decoded = decode_entries(entries)
        if decoded.events:
            try:
                await self.handler(decoded.events)
            except Exception:
                log.exception("usage handler failed on %d events; will retry", len(decoded.events))
                return False
        await self.bus.ack_usage(self.group, decoded.clean)
        for entry_id, (lines, reason) in decoded.bad.items():
            log.error("usage entry %s has undecodable lines, dead-lettered: %s", entry_id, reason)
            await self.bus.dead_letter_usage(self.group, entry_id, lines, reason)
        return True

    def _lost(self, exc: BusUnavailable) -> None:
        if self._reachable:
            self._reachable = False
            log.warning("usage bus unreachable (%s); consumer %s waiting", exc, self.consumer)

    def _reached(self) -> None:
        if not self._reachable:
            self._reachable = True
            log.info("usage bus reachable again; consumer %s reading", self.consumer)
