"""The OpenAI surface (`/api/v1`, alias `/v1`): chat completions and the model list.

The engine does the work; this module only moves bytes between granian and it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, cast

from granian.rsgi import HTTPProtocol, ProtocolClosed, Scope

from muxgate._native import Stream

if TYPE_CHECKING:
    from muxgate.gateway.app import Gateway

# A complete answer from the engine: status, headers, body.
Response = tuple[int, list[tuple[str, str]], bytes]


async def chat_completions(gateway: Gateway, scope: Scope, proto: HTTPProtocol) -> None:
    body = await gateway.read_body(scope, proto)
    if body is None:
        return
    headers = scope.headers
    future: asyncio.Future[object] = gateway.loop.create_future()
    gateway.engine.chat(headers.get("authorization"), headers.get("x-api-key"), body, future)
    reply = await future
    if isinstance(reply, Stream):
        await relay(gateway, proto, reply)
    else:
        status, response_headers, payload = cast(Response, reply)
        proto.response_bytes(status, response_headers, payload)


async def relay(gateway: Gateway, proto: HTTPProtocol, stream: Stream) -> None:
    """Write the stream as the engine fills it; a client that leaves cancels the upstream."""
    transport = proto.response_stream(200, stream.headers)
    watcher = asyncio.ensure_future(proto.client_disconnect())
    watcher.add_done_callback(lambda w: None if w.cancelled() else stream.cancel())
    loop = gateway.loop
    try:
        while True:
            chunk = stream.read()
            if chunk is None:
                ready: asyncio.Future[None] = loop.create_future()
                stream.wait(ready)
                await ready
                continue
            if not chunk:
                break
            await transport.send_bytes(chunk)
    except (ProtocolClosed, ConnectionError):
        stream.cancel()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def models(gateway: Gateway, scope: Scope, proto: HTTPProtocol) -> None:
    headers = scope.headers
    status, response_headers, payload = gateway.engine.models(
        headers.get("authorization"), headers.get("x-api-key")
    )
    proto.response_bytes(status, response_headers, payload)
