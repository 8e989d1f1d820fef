"""Errors the Python glue answers itself (routing of paths, body size), in the same body
format the engine uses: `{"error": {"code": "<status>", "type", "message"}}`."""

from __future__ import annotations

import msgspec


class ErrorDetail(msgspec.Struct, frozen=True):
    code: str
    type: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True):
    error: ErrorDetail


def error_json(status: int, type_: str, message: str) -> bytes:
    return msgspec.json.encode(ErrorBody(ErrorDetail(str(status), type_, message)))
