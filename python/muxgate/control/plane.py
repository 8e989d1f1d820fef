"""The control plane's moving parts besides its HTTP API: publishing the routing snapshot after
every change, consuming usage into records, ledger entries and insurance claims, and the
periodic jobs (bonus expiry, usage retention, the live figures of models and
channels, republishing after Redis lost its data, the hallucination judge).

The same object runs in production (Redis buses) and in embedded mode (the local bus)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from litestar import Litestar

from muxgate.bus.base import BusUnavailable, SnapshotBus, UsageBus
from muxgate.bus.tasks import cancel_and_wait
from muxgate.control.app import create_app
from muxgate.control.insurance.judge import Judge, JudgeSettings
from muxgate.control.metering.consumer import UsageConsumer
from muxgate.control.routing.compile import (
    compile_snapshot,
    live_figures,
    medians_moved,
    recent_medians,
    stored_snapshot,
)
from muxgate.store import Store
from muxgate.store.ledger import expire_bonus, now_utc
from muxgate.store.usage import purge_usage, record_usage
from muxgate.wire.usage import UsageEvent

log = logging.getLogger("muxgate.control")


class ControlPlane:
    """Owns the store; start with `await start()`, stop with `await stop()`."""

    def __init__(
        self,
        store: Store,
        snapshots: SnapshotBus,
        usage: UsageBus,
        *,
        admin_token: str,
        consumer: str | None = None,
        job_interval: float = 30.0,
        watch_interval: float = 1.0,
        medians_interval: float = 60.0,
        judge: JudgeSettings | None = None,
    ) -> None:
        self.store = store
        self.snapshots = snapshots
        self.usage = usage
        self.job_interval = job_interval
        self.watch_interval = watch_interval
        self.medians_interval = medians_interval
        self.app: Litestar = create_app(store, admin_token=admin_token, on_change=self.publish)
        self.consumer = UsageConsumer(usage, self.record, consumer=consumer)
        self.judge = Judge(store, judge or JudgeSettings(), on_unblocked=self.publish)
        self._publish_lock = asyncio.Lock()
        self._published = 0
        # The live figures (TTFT medians, channel stats) of the last compiled snapshot.
        self._medians: dict[str, float] = {}
        self._medians_checked: datetime | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.publish()
        self.consumer.start()
        self._tasks = [
            asyncio.ensure_future(self._jobs()),
            asyncio.ensure_future(self._watch_bus()),
            asyncio.ensure_future(self._judge()),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.consumer.stop()

    async def publish(self) -> None:
        """Compile the store into the next snapshot and publish it. The compile is committed
        first, so a publish that fails (Redis down) is repeated by `_watch_bus`."""
        async with self._publish_lock:
            snapshot = await compile_snapshot(self.store)
            log.info("routing snapshot %d compiled", snapshot.version)
            self._medians = live_figures(snapshot)
            await self._send(snapshot.version, snapshot.encode())

    async def _send(self, version: int, data: bytes) -> None:
        try:
            await self.snapshots.publish_snapshot(version, data)
        except BusUnavailable as exc:
            log.warning("routing snapshot %d not published yet: %s", version, exc)
            return
        self._published = max(self._published, version)

    async def record(self, events: list[UsageEvent]) -> None:
        """The metering handler: records, charges and books insurance claims (idempotent), then
        blocks accounts and keys that ran out on every worker, and unblocks accounts an
        insurance credit took back above zero."""
        result = await record_usage(self.store, events)
        if result.unknown_accounts:
            log.warning("usage for unknown accounts %s recorded", result.unknown_accounts)
        if result.blocked_accounts or result.exhausted_keys or result.unblocked_accounts:
            await self.publish()

    async def refresh_medians(self, now: datetime | None = None) -> bool:
        """Recompile when the live figures (models' TTFT medians, channels' stats) moved away
        from the published ones, so relative `high_latency` rules and routing by latency,
        throughput or quality judge by recent figures; True if it published."""
        now = now or now_utc()
        self._medians_checked = now
        if not medians_moved(self._medians, await recent_medians(self.store, now)):
            return False
        await self.publish()
        return True

    async def _watch_bus(self) -> None:
        """Republish the stored snapshot when the bus lost it (Redis restarted empty) or a
        publish failed while it was down."""
        while True:
            await asyncio.sleep(self.watch_interval)
            try:
                current = await self.snapshots.current_version()
                version, data = await stored_snapshot(self.store)
            except BusUnavailable:
                continue
            except Exception:
                # E.g. the database restarting: this watch must outlive it.
                log.exception("reading the stored routing snapshot failed; retrying")
                continue
            if data is not None and (current is None or current < version):
                log.info("republishing routing snapshot %d", version)
                async with self._publish_lock:
                    await self._send(version, data)

    async def _jobs(self) -> None:
        # Key expiry needs no job: the snapshot carries each key's expiry and every worker
        # compares it with its own clock.
        while True:
            await asyncio.sleep(self.job_interval)
            try:
                await self.run_jobs()
            except Exception:
                log.exception("control plane job failed; retrying at the next interval")

    async def _judge(self) -> None:
        """Grade the cases sampled for hallucination rules, a bounded batch per pass."""
        while True:
            await asyncio.sleep(self.judge.settings.interval)
            try:
                await self.judge.run_once()
            except Exception:
                log.exception("hallucination judge failed; retrying at its next interval")

    async def run_jobs(self, now: datetime | None = None) -> None:
        """Expire bonus grants and purge usage past retention; recompile when balances moved
        or, every `medians_interval`, when the live figures did."""
        now = now or now_utc()
        expired = await expire_bonus(self.store, now)
        purged = await purge_usage(self.store)
        if purged:
            log.info("purged %d usage records past retention", purged)
        if expired.entries:
            await self.publish()
        checked = self._medians_checked
        if checked is None or (now - checked).total_seconds() >= self.medians_interval:
            await self.refresh_medians(now)
