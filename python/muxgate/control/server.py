"""The production control plane process (`muxgate control`): granian serves this ASGI app,
whose lifespan opens the store and Redis and runs the `ControlPlane`.

Configured from the environment set by the CLI, so granian can import it by name."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from muxgate.bus.redis import RedisBus
from muxgate.control.insurance.judge import JudgeSettings
from muxgate.control.plane import ControlPlane
from muxgate.gateway.mount import MountedASGI, Receive, Send
from muxgate.store import Store

log = logging.getLogger("muxgate.control")


class ControlServer:
    """ASGI entry point: lifespan starts and stops the control plane; HTTP goes to its API."""

    def __init__(
        self,
        database: str,
        redis_url: str,
        admin_token: str,
        consumer: str | None = None,
        judge: JudgeSettings | None = None,
    ) -> None:
        self.database = database
        self.judge = judge
        self.redis_url = redis_url
        self.admin_token = admin_token
        # Stable across restarts: a control plane that crashed mid-batch finds its own pending
        # usage entries at once under the same name, instead of waiting for them to go stale
        # and be claimed (see `UsageConsumer`).
        self.consumer = consumer or socket.gethostname()
        self.plane: ControlPlane | None = None
        self._api: MountedASGI | None = None
        self._store: Store | None = None
        self._bus: RedisBus | None = None

    @classmethod
    def from_env(cls) -> ControlServer:
        return cls(
            os.environ["MUXGATE_DATABASE"],
            os.environ.get("MUXGATE_REDIS", "redis://127.0.0.1:6379/0"),
            os.environ["MUXGATE_ADMIN_TOKEN"],
            os.environ.get("MUXGATE_CONSUMER") or None,
            JudgeSettings.from_env(),
        )

    async def start(self) -> None:
        self._store = await Store.open(self.database)
        self._bus = RedisBus.from_url(self.redis_url)
        if warning := await self._bus.durability_warning():
            log.warning("%s", warning)
        self.plane = ControlPlane(
            self._store,
            self._bus,
            self._bus,
            admin_token=self.admin_token,
            consumer=self.consumer,
            judge=self.judge,
        )
        self._api = MountedASGI(self.plane.app)
        await self._api.startup()
        await self.plane.start()

    async def stop(self) -> None:
        if self.plane is not None:
            await self.plane.stop()
        if self._api is not None:
            await self._api.shutdown()
        if self._bus is not None:
            await self._bus.aclose()
        if self._store is not None:
            await self._store.close()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.plane is None:
            raise RuntimeError("the control plane has not started")
        await self.plane.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def __getattr__(name: str) -> ControlServer:
    # granian imports `muxgate.control.server:app`; built on first access, from the environment.
    if name == "app":
        return ControlServer.from_env()
    raise AttributeError(name)
