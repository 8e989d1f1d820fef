"""Keeps a worker's routing table at the control plane's current snapshot.

Pub/sub hints make changes arrive in milliseconds; polling the version every `poll_interval`
catches a hint that was lost. While the bus is unreachable the worker keeps serving the table it
has; a worker that never got one keeps answering 503."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from muxgate.bus.base import BusUnavailable, SnapshotBus
from muxgate.bus.tasks import cancel_and_wait

log = logging.getLogger("muxgate.gateway.snapshots")


class SnapshotWatcher:
    """Loads each newer snapshot version once, through `load` (e.g. `Gateway.load_snapshot`)."""

    def __init__(
        self,
        bus: SnapshotBus,
        load: Callable[[bytes], None],
        poll_interval: float = 1.0,
        *,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
    ) -> None:
        self.bus = bus
        self.load = load
        self.poll_interval = poll_interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.version = 0
        self._rejected = 0
        self._missing = 0
        self._lock = asyncio.Lock()
        self._reachable = True
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start listening and polling; `loop` may be one that is not running yet."""
        loop = loop or asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen()), loop.create_task(self._poll())]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def refresh(self) -> int:
        """Check the current version now (raises `BusUnavailable`); returns the loaded one."""
        current = await self.bus.current_version()
        if current is not None:
            await self._consider(current)
        return self.version

    async def wait_for_version(self, version: int, wait_s: float) -> bool:
        """True once `version` (or a newer one) is loaded, False after `wait_s` seconds."""
        if self.version >= version:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((version, future))
        try:
            await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove((version, future))
        return True

    async def _consider(self, version: int) -> None:
        async with self._lock:
            if version <= self.version or version == self._rejected:
                return
            data = await self.bus.fetch_snapshot(version)
            if data is None:
                if self._missing != version:
                    self._missing = version
                    log.warning("routing snapshot %d is announced but not stored", version)
                return
            try:
                self.load(data)
            except Exception:
                # Deterministic: loading the same bytes again would fail again.
                log.exception("routing snapshot %d rejected; keeping %d", version, self.version)
                self._rejected = version
                return
            self.version = version
            log.info("routing snapshot %d loaded", version)
        for wanted, future in self._waiters:
            if wanted <= version and not future.done():
                future.set_result(None)

    async def _listen(self) -> None:
        delay = self.retry_initial
        while True:
            try:
                async with contextlib.aclosing(self.bus.version_hints()) as hints:
                    async for version in hints:
                        self._reached()
                        delay = self.retry_initial
                        await self._consider(version)
            except BusUnavailable as exc:
                self._lost(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    async def _poll(self) -> None:
        while True:
            try:
                await self.refresh()
                self._reached()
            except BusUnavailable as exc:
                self._lost(exc)
            await asyncio.sleep(self.poll_interval)

    def _lost(self, exc: BusUnavailable) -> None:
        if self._reachable:
            self._reachable = False
            log.warning(
                "routing bus unreachable (%s); serving routing version %d", exc, self.version
            )

    def _reached(self) -> None:
        if not self._reachable:
            self._reachable = True
            log.info("routing bus reachable again; routing version %d", self.version)
