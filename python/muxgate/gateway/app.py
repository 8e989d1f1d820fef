"""The RSGI application one gateway worker serves: path dispatch, body limits, and the bridge
between granian's event loop and the native engine's completion queue."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

import msgspec
from granian.rsgi import HTTPProtocol, Scope

from muxgate._native import Engine
from muxgate.credentials import CredentialCipher
from muxgate.gateway.protocols import anthropic, gemini, openai
from muxgate.gateway.runtime import RedisRuntime, WorkerRuntime
from muxgate.gateway.server import starting
from muxgate.wire.snapshot import RoutingSnapshot

log = logging.getLogger("muxgate.gateway")

Handler = Callable[["Gateway", Scope, HTTPProtocol], Awaitable[None]]
# (status, our error type, message) -> body, in one surface's error format.
ErrorFormat = Callable[[int, str, str], bytes]

JSON = [("content-type", "application/json")]

# path -> (method, handler)
ROUTES: dict[str, tuple[str, Handler]] = {
    "/api/v1/chat/completions": ("POST", openai.chat_completions),
    "/v1/chat/completions": ("POST", openai.chat_completions),
    "/api/v1/responses": ("POST", openai.responses),
    "/v1/responses": ("POST", openai.responses),
    "/api/v1/models": ("GET", openai.models),
    "/v1/models": ("GET", openai.models),
    "/api/anthropic/v1/messages": ("POST", anthropic.messages),
    "/api/anthropic/v1/messages/count_tokens": ("POST", anthropic.count_tokens),
    "/api/anthropic/v1/models": ("GET", anthropic.models),
}

ANTHROPIC_PREFIX = "/api/anthropic/"

# Paths the control plane answers when it runs in this process (embedded mode).
CONTROL_PREFIXES = ("/admin/", "/api/v1/management/", "/api/v1/insurance/")


class Gateway:
    """One per worker process. Built from the environment so granian can import it by name."""

    def __init__(self, runtime: WorkerRuntime, max_body_bytes: int = 10 * 1024 * 1024) -> None:
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes
        self.engine = Engine()
        self.cipher = CredentialCipher.from_env()
        self.loop: asyncio.AbstractEventLoop

    @classmethod
    def from_env(cls) -> Gateway:
        max_body = int(os.environ.get("MUXGATE_MAX_BODY_BYTES", str(10 * 1024 * 1024)))
        runtime: WorkerRuntime
        if os.environ.get("MUXGATE_MODE") == "embedded":
            from muxgate.embedded import EmbeddedRuntime  # noqa: PLC0415 (control plane deps)

            runtime = EmbeddedRuntime.from_env()
        else:
            redis_url = os.environ.get("MUXGATE_REDIS", "redis://127.0.0.1:6379/0")
            runtime = RedisRuntime(redis_url, os.environ.get("MUXGATE_SPILL_DIR", ".muxgate/spill"))
            gateway = cls(runtime, max_body_bytes=max_body)
            # Rate limits hold across every worker of every host through the same Redis.
            gateway.engine.use_redis_limits(redis_url)
            return gateway
        return cls(runtime, max_body_bytes=max_body)

    def load_snapshot(self, data: bytes) -> None:
        """Load a snapshot, decrypting the provider credentials it carries encrypted."""
        credentials: dict[str, str] = {}
        for provider in msgspec.msgpack.decode(data, type=RoutingSnapshot).providers:
            if provider.credential_encrypted is None:
                continue
            try:
                credentials[provider.id] = self.cipher.decrypt(provider.credential_encrypted)
            except ValueError as exc:
                log.warning("provider %s: %s; its channels are disabled", provider.id, exc)
        for warning in self.engine.load_snapshot(data, credentials):
            log.warning("routing snapshot: %s", warning)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        loop.add_reader(self.engine.wakeup_fd, self._on_wakeup)
        with starting(loop):
            self.runtime.start(self, loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.engine.wakeup_fd)
        self._on_wakeup()
        self.runtime.stop(loop)

    def _on_wakeup(self) -> None:
        self.engine.drain()
        # After the drain: the usage of every answer it resolved is queued already, and is
        # journaled here before any of those answers runs on (see `gateway.metering`).
        self.take_usage()

    def take_usage(self) -> None:
        """Journal the usage the engine has queued; called before an answer's bytes are sent."""
        batch = self.engine.take_usage()
        if batch is not None:
            self.runtime.sink.write(batch)

    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        if scope.proto != "http":
            return
        route = ROUTES.get(scope.path)
        if route is None and scope.path.startswith(gemini.PREFIX):
            await gemini.dispatch(self, scope, proto)
            return
        if route is None:
            if scope.path == "/healthz":
                self._health(proto)
                return
            control = self.runtime.control
            if control is not None and scope.path.startswith(CONTROL_PREFIXES):
                await control(scope, proto)
                return
            message = f"No route for {scope.method} {scope.path}"
            proto.response_bytes(404, JSON, _errors(scope.path)(404, "not_found", message))
            return
        method, handler = route
        if scope.method != method:
            message = f"{scope.path} accepts {method} only"
            body = _errors(scope.path)(405, "method_not_allowed", message)
            proto.response_bytes(405, [*JSON, ("allow", method)], body)
            return
        await handler(self, scope, proto)

    def _health(self, proto: HTTPProtocol) -> None:
        """200 with the routing version once a snapshot is loaded; before that 503, in the error
        format the API's clients parse, so a load balancer keeps traffic away."""
        version = self.engine.routing_version
        if version:
            proto.response_bytes(200, JSON, b'{"routing_version":%d}' % version)
            return
        message = "No routing snapshot loaded yet: waiting for the control plane"
        proto.response_bytes(503, JSON, openai.error(503, "service_unavailable", message))

    def read_body(
        self, scope: Scope, proto: HTTPProtocol, error: ErrorFormat
    ) -> Awaitable[bytes | None]:
        """The request body, or None after answering 4xx (in the surface's `error` format) when
        it is malformed or exceeds the cap. Not a coroutine: a request with a valid
        Content-Length awaits granian's read directly."""
        declared = scope.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) <= self.max_body_bytes:
            return proto()
        return self._read_body_checked(proto, declared, error)

    async def _read_body_checked(
        self, proto: HTTPProtocol, declared: str | None, error: ErrorFormat
    ) -> bytes | None:
        if declared is not None:
            if not declared.isdigit():
                message = "Content-Length is not a number"
                proto.response_bytes(400, JSON, error(400, "invalid_params", message))
                return None
        else:
            parts: list[bytes] = []
            size = 0
            async for part in proto:
                size += len(part)
                if size > self.max_body_bytes:
                    break
                parts.append(part)
            else:
                return b"".join(parts)
        message = f"Request body is larger than {self.max_body_bytes} bytes"
        proto.response_bytes(413, JSON, error(413, "invalid_params", message))
        return None


def _errors(path: str) -> ErrorFormat:
    """The error format of the surface a path belongs to."""
    return anthropic.error if path.startswith(ANTHROPIC_PREFIX) else openai.error


app = Gateway.from_env()
