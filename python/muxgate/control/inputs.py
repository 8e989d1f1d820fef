"""What the control plane refuses before a handler runs: a NUL in the path or query (no id
or name holds one, and PostgreSQL text cannot), and JSON bodies that nest too deep or do not
match the handler's schema strictly.

Litestar converts request data leniently (a `0` becomes `false`, `"5"` becomes `5`), which
suits query strings but not JSON, whose types are stated: a body is decoded once strictly
against the type of the handler's `data`, so what the OpenAPI document says is what is
accepted. Depth is checked first, so no decoder ever recurses through a body built to exhaust
the stack."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

MAX_DEPTH = 128
"""How deep arrays and objects may nest in a JSON body (the inference surfaces' limit too)."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nests_within(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the arrays and objects of `body` nest at most `limit` deep. Strings are cut out
    and only brackets are walked, so the cost is a regex pass plus one step per bracket;
    malformed JSON is left for the decoder to refuse."""
    depth = 0
    for bracket in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if bracket in b"[{":
            depth += 1
            if depth > limit:
                return False
        else:
            depth -= 1
    return True


def refuse_nul(request: Request[Any, Any, Any]) -> None:
    """Litestar's `before_request` hook: a NUL byte in the path or the query string is a 400."""
    if "\x00" in request.url.path or "%00" in request.scope["query_string"].decode("latin-1"):
        raise ValidationException("the path and the query may not contain a NUL byte")


def _refused(message: str) -> ValidationException:
    return ValidationException(message, extra=[{"message": message, "source": "body"}])


class StrictRequest(Request[Any, Any, Any]):
    """A request whose JSON body is depth-checked and validated strictly (see the module)."""

    async def json(self) -> Any:
        body = await self.body()
        if body and not nests_within(body):
            raise _refused(f"arrays and objects nest deeper than {MAX_DEPTH} levels")
        data = self.route_handler.parsed_fn_signature.parameters.get("data")
        if body and data is not None:
            try:
                msgspec.json.decode(body, type=data.annotation, strict=True)
            except msgspec.ValidationError as exc:
                raise _refused(str(exc)) from exc
            except msgspec.DecodeError as exc:
                raise _refused(f"not valid JSON: {exc}") from exc
        return await super().json()
