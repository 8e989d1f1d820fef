"""Errors the Python glue answers itself (routing of paths, body size), in the body format the
engine uses for the same surface: `{"error": {"code": "<status>", "type", "message"}}` on the
OpenAI surface, Anthropic's and Google's own shapes on `/api/anthropic` and `/api/vertex-ai`."""

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


class AnthropicErrorDetail(msgspec.Struct, frozen=True):
    type: str
    message: str


class AnthropicErrorBody(msgspec.Struct, frozen=True, tag_field="type", tag="error"):
    error: AnthropicErrorDetail


# The Anthropic error type of each status the glue answers itself.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    503: "overloaded_error",
}


def anthropic_error_json(status: int, type_: str, message: str) -> bytes:
    """Anthropic's `{"type": "error", "error": {"type", "message"}}`; `type_` is ours, mapped
    to Anthropic's by status."""
    del type_
    kind = _ANTHROPIC_TYPES.get(status, "api_error")
    return msgspec.json.encode(AnthropicErrorBody(AnthropicErrorDetail(kind, message)))


class GoogleErrorDetail(msgspec.Struct, frozen=True):
    code: int
    message: str
    status: str


class GoogleErrorBody(msgspec.Struct, frozen=True):
    error: GoogleErrorDetail


# Google's canonical status name for each status the glue answers itself.
_GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    413: "INVALID_ARGUMENT",
    503: "UNAVAILABLE",
}


def google_error_json(status: int, type_: str, message: str) -> bytes:
    """Google's `{"error": {"code", "message", "status"}}`; `type_` is ours, mapped to Google's
    status name by the HTTP status."""
    del type_
    name = _GOOGLE_STATUSES.get(status, "INTERNAL")
    return msgspec.json.encode(GoogleErrorBody(GoogleErrorDetail(status, message, name)))
