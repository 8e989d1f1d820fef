"""Embedded mode (`muxgate serve`): the control plane and one gateway worker in one process, on
the local bus and a SQLite file, so the product runs with no external service.

The code paths are production's: the control plane compiles and publishes snapshots, the worker
watches them, usage goes through the publisher and the consumer into the store. Only the bus
(a durable local journal instead of Redis) differs."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from muxgate.bus.local import LocalBus
from muxgate.control.insurance.judge import JudgeSettings
from muxgate.control.plane import ControlPlane
from muxgate.datadir import store_url
from muxgate.gateway.metering import UsageSink
from muxgate.gateway.mount import MountedASGI
from muxgate.gateway.publisher import UsagePublisher
from muxgate.gateway.runtime import worker_id
from muxgate.gateway.snapshots import SnapshotWatcher
from muxgate.store import Store

if TYPE_CHECKING:
    from muxgate.gateway.app import Gateway

log = logging.getLogger("muxgate.embedded")


class EmbeddedRuntime:
    """A `WorkerRuntime` that also runs the control plane."""

    def __init__(
        self,
        database: str,
        data_dir: str | Path,
        admin_token: str,
        judge: JudgeSettings | None = None,
    ) -> None:
        self.database = database
        self.data_dir = Path(data_dir)
        self.admin_token = admin_token
        self.judge = judge
        self.bus = LocalBus(self.data_dir / "bus")
        self.publisher = UsagePublisher(self.bus, self.data_dir / "spill", worker_id())
        self.control: MountedASGI | None = None
        self.store: Store | None = None
        self.plane: ControlPlane | None = None
        self.watcher: SnapshotWatcher | None = None

    @classmethod
    def from_env(cls) -> EmbeddedRuntime:
        data_dir = Path(os.environ["MUXGATE_DATA_DIR"])
        return cls(
            os.environ.get("MUXGATE_DATABASE") or store_url(data_dir),
            data_dir,
            os.environ["MUXGATE_ADMIN_TOKEN"],
            JudgeSettings.from_env(),
        )

    @property
    def sink(self) -> UsageSink:
        return self.publisher

    def start(self, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self._start(gateway))

    async def _start(self, gateway: Gateway) -> None:
        log.info("starting the control plane")
        self.store = await Store.open(self.database)
        self.plane = ControlPlane(
            self.store,
            self.bus,
            self.bus,
            admin_token=self.admin_token,
            consumer="embedded",
            judge=self.judge,
        )
        control = MountedASGI(self.plane.app)
        await control.startup()
        await self.plane.start()
        self.publisher.start()
        self.watcher = SnapshotWatcher(self.bus, gateway.load_snapshot)
        await self.watcher.refresh()
        self.watcher.start()
        self.control = control

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self._stop())

    async def _stop(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
        await self.publisher.aclose()
        if self.plane is not None:
            await self.plane.stop()
        if self.control is not None:
            await self.control.shutdown()
        if self.store is not None:
            await self.store.close()
        self.bus.close()
