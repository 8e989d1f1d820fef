"""The OpenAI surface (`/api/v1`, alias `/v1`): Chat Completions, Responses and the model list."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from granian.rsgi import HTTPProtocol, Scope

from muxgate.gateway.protocols.exchange import exchange
from muxgate.wire.errors import error_json

if TYPE_CHECKING:
    from muxgate.gateway.app import Gateway

error = error_json


async def chat_completions(gateway: Gateway, scope: Scope, proto: HTTPProtocol) -> None:
    headers = scope.headers
    call = partial(gateway.engine.chat, headers.get("authorization"), headers.get("x-api-key"))
    await exchange(gateway, scope, proto, error, call)


async def responses(gateway: Gateway, scope: Scope, proto: HTTPProtocol) -> None:
    headers = scope.headers
    call = partial(gateway.engine.responses, headers.get("authorization"), headers.get("x-api-key"))
    await exchange(gateway, scope, proto, error, call)


async def models(gateway: Gateway, scope: Scope, proto: HTTPProtocol) -> None:
    headers = scope.headers
    status, response_headers, payload = gateway.engine.models(
        headers.get("authorization"), headers.get("x-api-key")
    )
    proto.response_bytes(status, response_headers, payload)
