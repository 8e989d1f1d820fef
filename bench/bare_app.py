"""The floor of anything granian serves: an RSGI app that reads the request body and answers a
fixed chat-completion JSON from memory, with no routing, auth, upstream call or metering.

Run as `granian --interface rsgi --workers 1 --loop uvloop --http 1 bench.bare_app:app`.
"""

from __future__ import annotations

from granian.rsgi import HTTPProtocol, Scope

BODY = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    b'"model":"json","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello! You said: hello."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":8,"completion_tokens":7,"total_tokens":15}}'
)
HEADERS = [("content-type", "application/json")]


class BareApp:
    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        if scope.proto != "http":
            return
        await proto()
        proto.response_bytes(200, HEADERS, BODY)


app = BareApp()
