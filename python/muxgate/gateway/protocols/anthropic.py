"""The Anthropic surface (`/api/anthropic`): Messages, token counting and the model list, for the
Anthropic SDK and Claude Code. Keys come as `x-api-key` or Bearer; any model is reachable,
whatever its provider speaks. `anthropic-version` is accepted whatever it says: the SDKs move
it forward with every release, and what we answer is the same. `anthropic-beta` goes on to
Messages providers (other protocols have no use for it)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from granian.rsgi import HTTPProtocol, Scope

from muxgate.gateway.protocols.exchange import exchange
from muxgate.wire.errors import anthropic_error_json

if TYPE_CHECKING:
    from muxgate.gateway.app import Gateway

error = anthropic_error_json
# Bodies up to this size are counted in place (microseconds); the engine does the same.
INLINE_COUNT_BYTES = 16 * 1024


async def messages(gateway: Gateway, scope: Scope, proto: HTTPProtocol) -> None:
    headers = scope.headers
    beta = headers.get("anthropic-beta")
    if beta is not None:
        # Sent comma-separated or repeated; passed on as one comma-separated value.
        beta = ",".join(v for k, v in headers.items() if k == "anthropic-beta")
    call = partial(
        gateway.engine.messages, headers.get("authorization"), headers.get("x-api-key"), beta
    )
    await exchange(gateway, scope, proto, error, call)


async def count_tokens(gateway: Gateway, scope: Scope, proto: HTTPProtocol) -> None:
    body = await gateway.read_body(scope, proto, error)
    if body is None:
        return
    headers = scope.headers
    count = partial(
        gateway.engine.count_tokens, headers.get("authorization"), headers.get("x-api-key"), body
    )
    # Counting runs at ~10 MB/s: a large body is counted on a thread (the engine releases the
    # GIL), so it cannot stall every other request of this worker's event loop.
    if len(body) > INLINE_COUNT_BYTES:
        status, response_headers, payload = await gateway.loop.run_in_executor(None, count)
    else:
        status, response_headers, payload = count()
    proto.response_bytes(status, response_headers, payload)


async def models(gateway: Gateway, scope: Scope, proto: HTTPProtocol) -> None:
    headers = scope.headers
    status, response_headers, payload = gateway.engine.models(
        headers.get("authorization"), headers.get("x-api-key"), "anthropic"
    )
    proto.response_bytes(status, response_headers, payload)
