"""The admin guard: `Authorization: Bearer <admin token>`, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard


def admin_guard(admin_token: str) -> Guard:
    if not admin_token:
        raise ValueError("an admin token is required")
    expected = admin_token.encode()

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
        given = token.strip().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
            raise NotAuthorizedException("a valid admin token is required (Authorization: Bearer)")

    return guard
