"""What a gateway worker is connected to: where its routing snapshots come from and where its
usage events go. Production workers use Redis (`RedisRuntime`); embedded mode runs the control
plane in the same process on the local bus (`muxgate.embedded.EmbeddedRuntime`)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from muxgate.bus.redis import RedisBus
from muxgate.gateway.metering import UsageSink
from muxgate.gateway.mount import MountedASGI
from muxgate.gateway.publisher import MiB, UsagePublisher
from muxgate.gateway.snapshots import SnapshotWatcher

if TYPE_CHECKING:
    from muxgate.gateway.app import Gateway

QUEUE_BYTES_ENV = "MUXGATE_USAGE_QUEUE_BYTES"
DEFAULT_QUEUE_BYTES = 64 * MiB


def queue_bytes_from_env() -> int:
    """How much usage a worker holds in memory while the bus is down before spilling."""
    value = os.environ.get(QUEUE_BYTES_ENV)
    if not value:
        return DEFAULT_QUEUE_BYTES
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{QUEUE_BYTES_ENV} must be a positive number of bytes, not {value!r}")
    return int(value)


def worker_id() -> str:
    """Unique per process and host, so spill files of different workers never collide."""
    host = "".join(ch if ch.isalnum() else "_" for ch in socket.gethostname())
    return f"{host}.{os.getpid()}"


class WorkerRuntime(Protocol):
    @property
    def sink(self) -> UsageSink: ...

    @property
    def control(self) -> MountedASGI | None:
        """The control plane's API when it runs in this process (ready after `start`)."""
        ...

    def start(self, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> None:
        """Called before the loop runs: connect and begin watching for snapshots."""
        ...

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called after the loop stopped serving: send or spill what is left."""
        ...


class RedisRuntime:
    """Snapshots from Redis (pub/sub hint plus polling), usage to the Redis stream. While Redis
    is unreachable usage waits in memory, up to `queue_bytes` (default from the environment),
    then in `spill_dir`."""

    control = None

    def __init__(
        self,
        redis_url: str,
        spill_dir: str | Path,
        poll_interval: float = 1.0,
        queue_bytes: int | None = None,
    ) -> None:
        self.bus = RedisBus.from_url(redis_url)
        capacity = queue_bytes if queue_bytes is not None else queue_bytes_from_env()
        self.publisher = UsagePublisher(self.bus, spill_dir, worker_id(), capacity_bytes=capacity)
        self.poll_interval = poll_interval
        self.watcher: SnapshotWatcher | None = None

    @property
    def sink(self) -> UsageSink:
        return self.publisher

    def start(self, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> None:
        self.publisher.start(loop)
        self.watcher = SnapshotWatcher(self.bus, gateway.load_snapshot, self.poll_interval)
        self.watcher.start(loop)

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self._stop())

    async def _stop(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
        await self.publisher.aclose()
        await self.bus.aclose()
