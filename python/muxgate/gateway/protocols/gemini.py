"""The Gemini surface (`/api/vertex-ai`): `generateContent` and `streamGenerateContent` for the
Google GenAI SDK, Vertex-style (`/v1/publishers/{publisher}/models/{model}`, also under
`projects/{p}/locations/{l}/`) and Developer-API-style (`/v1beta/models/{model}`), and the model
list. The model is named by the path: `publishers/google/models/gemini-2.5-pro` is the model
`google/gemini-2.5-pro`. Keys come as Bearer, `x-goog-api-key` or `?key=`."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from granian.rsgi import HTTPProtocol, Scope

from muxgate.gateway.protocols.exchange import exchange
from muxgate.wire.errors import google_error_json

if TYPE_CHECKING:
    from muxgate.gateway.app import Gateway

error = google_error_json
PREFIX = "/api/vertex-ai/"
JSON = [("content-type", "application/json")]
METHODS = {"generateContent": False, "streamGenerateContent": True}


def model_call(path: str) -> tuple[str, str] | None:
    """`(model, method)` named by a generate path, or None when the path names none."""
    rest = path[len(PREFIX) :]
    _version, _, rest = rest.partition("/")
    if rest.startswith("projects/"):
        parts = rest.split("/", 4)
        if len(parts) < 5 or parts[2] != "locations":
            return None
        rest = parts[4]
    if rest.startswith("publishers/"):
        publisher, _, rest = rest[len("publishers/") :].partition("/")
        if not publisher or not rest.startswith("models/"):
            return None
        name, _, method = rest[len("models/") :].rpartition(":")
        model = f"{publisher}/{name}"
    elif rest.startswith("models/"):
        name, _, method = rest[len("models/") :].rpartition(":")
        model = name
    else:
        return None
    if not name:
        return None
    return unquote(model), method


def _key(scope: Scope, query: dict[str, list[str]]) -> str | None:
    headers = scope.headers
    return headers.get("x-goog-api-key") or headers.get("x-api-key") or query.get("key", [None])[0]


async def dispatch(gateway: Gateway, scope: Scope, proto: HTTPProtocol) -> None:
    """Every request under the prefix: a model call, the model list, or a clear 404/405."""
    query = parse_qs(scope.query_string)
    rest = scope.path[len(PREFIX) :]
    if rest.partition("/")[2] == "models":
        if scope.method != "GET":
            message = f"{scope.path} accepts GET only"
            proto.response_bytes(405, [*JSON, ("allow", "GET")], error(405, "", message))
            return
        status, headers, payload = gateway.engine.models(
            scope.headers.get("authorization"), _key(scope, query), "gemini"
        )
        proto.response_bytes(status, headers, payload)
        return
    call = model_call(scope.path)
    if call is None or call[1] not in METHODS:
        message = f"No route for {scope.method} {scope.path}"
        proto.response_bytes(404, JSON, error(404, "", message))
        return
    if scope.method != "POST":
        message = f"{scope.path} accepts POST only"
        proto.response_bytes(405, [*JSON, ("allow", "POST")], error(405, "", message))
        return
    model, method = call
    generate = partial(
        gateway.engine.generate_content,
        model,
        METHODS[method],
        query.get("alt", [""])[0] == "sse",
        scope.headers.get("authorization"),
        _key(scope, query),
    )
    await exchange(gateway, scope, proto, error, generate)
