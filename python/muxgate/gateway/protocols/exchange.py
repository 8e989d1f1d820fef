"""What every inbound surface does with the engine's reply: write a complete answer, or relay
a stream as the engine fills it. The engine speaks the client's protocol already; this only
moves bytes between it and granian."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from granian.rsgi import HTTPProtocol, ProtocolClosed, Scope

from muxgate._native import Stream

if TYPE_CHECKING:
    from muxgate.gateway.app import ErrorFormat, Gateway

# A complete answer from the engine: status, headers, body.
Response = tuple[int, list[tuple[str, str]], bytes]
# An engine call given the request body and the future its reply resolves.
EngineCall = Callable[[bytes, asyncio.Future[object]], None]


async def exchange(
    gateway: Gateway, scope: Scope, proto: HTTPProtocol, error: ErrorFormat, call: EngineCall
) -> None:
    """One model call: read the body (refused in the surface's `error` format), hand it to the
    engine, send its reply."""
    body = await gateway.read_body(scope, proto, error)
    if body is None:
        return
    future: asyncio.Future[object] = gateway.loop.create_future()
    call(body, future)
    await answer(gateway, proto, future)


async def answer(gateway: Gateway, proto: HTTPProtocol, future: asyncio.Future[object]) -> None:
    """Wait for the engine's reply to one request and send it."""
    reply = await future
    if isinstance(reply, Stream):
        await relay(gateway, proto, reply)
    else:
        status, headers, payload = cast(Response, reply)
        gateway.take_usage()
        proto.response_bytes(status, headers, payload)


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
                gateway.take_usage()  # before the stream's last bytes (its end) are sent
                break
            await transport.send_bytes(chunk)
    except (ProtocolClosed, ConnectionError):
        stream.cancel()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
