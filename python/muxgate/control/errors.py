"""The one place errors become HTTP answers: store errors, request validation, auth and
anything unexpected, all in the body `{"error": {"code", "type", "message", "field"}}`."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from muxgate.store import Conflict, Invalid, NotFound, StoreError

log = logging.getLogger("muxgate.control")


class ApiErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    """The HTTP status, as a string."""
    type: str
    message: str
    field: str | None = None
    """Where the problem is: a path into the body (`price.prompt`) or a parameter name."""


class ApiError(msgspec.Struct, frozen=True, kw_only=True):
    error: ApiErrorDetail


_TYPES = {
    400: "invalid_request",
    401: "authentication_error",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    422: "invalid_value",
    500: "internal_error",
}

_STORE_STATUS: dict[type[StoreError], int] = {NotFound: 404, Conflict: 409, Invalid: 422}

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`")


def error_response(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response[ApiError]:
    detail = ApiErrorDetail(
        code=str(status), type=_TYPES.get(status, "error"), message=message, field=field
    )
    return Response(ApiError(error=detail), status_code=status, headers=headers)


def store_error(_: Request[Any, Any, Any], exc: StoreError) -> Response[ApiError]:
    status = next((s for cls, s in _STORE_STATUS.items() if isinstance(exc, cls)), 422)
    return error_response(status, exc.message, exc.field)


def _validation_field(extra: Any) -> tuple[str | None, str | None]:
    """(field path, message) of the first problem Litestar reports."""
    if not isinstance(extra, list) or not extra or not isinstance(extra[0], dict):
        return None, None
    first: dict[str, Any] = extra[0]
    message = str(first.get("message", ""))
    key = first.get("key")
    match = _AT.search(message)
    if match:
        message = message[: match.start()]
        path = match.group("path").lstrip(".")
        # `$[0]` style paths keep their brackets; `$.a.b` becomes `a.b`.
        key = path or key
    if key is None and first.get("source") == "body":
        key = "body"
    return (str(key) if key is not None else None), message or None


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ApiError]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        field, message = _validation_field(exc.extra)
        text = message or exc.detail
        return error_response(400, f"{field}: {text}" if field else text, field)
    # A 405 names the methods the path has (`Allow`), as HTTP asks.
    return error_response(status, exc.detail, headers=exc.headers)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ApiError]:
    log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    StoreError: store_error,
    HTTPException: http_error,
    Exception: internal_error,
}


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the error answers a handler can give."""
    described = {
        400: "The request does not match the schema",
        401: "Missing or wrong admin token",
        404: "No such resource",
        409: "Conflicts with existing data",
        422: "Well-formed but not acceptable",
    }
    return {
        s: ResponseSpec(ApiError, description=described[s], generate_examples=False)
        for s in (400, 401, *statuses)
    }
