"""An ASGI application served from inside the RSGI worker.

Embedded mode runs the control plane (Litestar, an ASGI app) in the same process as the gateway,
so one port answers both. Control-plane traffic is small, so the adapter buffers each response;
the inference path never goes through here. The request body is handed over as it arrives, never
read ahead: the app authenticates first and caps the size it accepts, so a caller without a token
cannot make the worker hold a large body."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from granian.rsgi import HTTPProtocol, Scope

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Frameworks type their scopes and events precisely; the adapter speaks the generic protocol.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


def _address(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None


class MountedASGI:
    """Runs an ASGI app's lifespan and answers RSGI requests through it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._lifespan: asyncio.Task[None] | None = None
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()

    async def startup(self) -> None:
        scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan = asyncio.ensure_future(
            self.app(scope, self._to_app.get, self._from_app.put)
        )
        await self._lifespan_step("lifespan.startup")

    async def shutdown(self) -> None:
        if self._lifespan is None:
            return
        await self._lifespan_step("lifespan.shutdown")
        with contextlib.suppress(asyncio.CancelledError):
            await self._lifespan
        self._lifespan = None

    async def _lifespan_step(self, event: str) -> None:
        await self._to_app.put({"type": event})
        reply = await self._from_app.get()
        if reply["type"] == f"{event}.failed":
            raise RuntimeError(f"control plane {event} failed: {reply.get('message', '')}")

    async def __call__(self, scope: Scope, proto: HTTPProtocol) -> None:
        # The body is read only when the app asks for it (after authenticating), and only as far
        # as it reads: a declared length comes in one read, a chunked body chunk by chunk.
        declared = scope.headers.get("content-length") is not None
        chunks: AsyncIterator[bytes] | None = None
        asgi_scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": scope.http_version,
            "method": scope.method,
            "scheme": scope.scheme,
            "path": scope.path,
            "raw_path": scope.path.encode(),
            "query_string": scope.query_string.encode("latin-1"),
            "root_path": "",
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in scope.headers.items()
            ],
            "client": _address(scope.client),
            "server": _address(scope.server),
            "state": {},
        }
        received_all = False
        status = 500
        headers: list[tuple[str, str]] = []
        parts: list[bytes] = []
        answered = asyncio.Event()

        async def receive() -> Message:
            nonlocal received_all, chunks
            if not received_all and declared:
                received_all = True
                return {"type": "http.request", "body": await proto(), "more_body": False}
            if not received_all:
                if chunks is None:
                    chunks = aiter(proto)
                try:
                    # Not `anext(chunks, None)`: granian's awaitable crashes the builtin's
                    # wrapper at the end of the body.
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    received_all = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                return {"type": "http.request", "body": bytes(chunk), "more_body": True}
            # Streaming responses listen for the client leaving while they write. The answer
            # is buffered and sent once complete, so the client "leaves" when it is: a listener
            # waiting on the real connection would keep the app from ever returning.
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                    for k, v in message.get("headers", [])
                ]
            elif message["type"] == "http.response.body":
                parts.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    answered.set()

        await self.app(asgi_scope, receive, send)
        proto.response_bytes(status, headers, b"".join(parts))
