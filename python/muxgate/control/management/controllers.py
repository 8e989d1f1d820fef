"""`/api/v1/management`: what an account may see about itself, authenticated by any of its
usable API keys (`Authorization: Bearer` or `x-api-key`), never another account's data."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException, NotFoundException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromQuery, QueryParameter

from muxgate.control.errors import responses
from muxgate.store import Store
from muxgate.store.claims import request_claims
from muxgate.store.keys import KeyRecord
from muxgate.store.ledger import now_utc
from muxgate.store.usage import get_usage

from .schemas import BalanceEnvelope, Generation, UsageEnvelope
from .services import BucketWidth, account_balance, generation, usable_key, usage_statistics

# Money goes out as exact decimal JSON numbers, as ZenMux's API writes them.
_encoder = msgspec.json.Encoder(decimal_format="number")
MAX_RANGE = timedelta(days=366)


def exact_json(value: msgspec.Struct) -> Response[bytes]:
    return Response(_encoder.encode(value), media_type="application/json")


def documented(model: type[msgspec.Struct], *errors: int) -> dict[int, ResponseSpec]:
    return {200: ResponseSpec(model, generate_examples=False), **responses(*errors)}


async def api_key_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Any usable API key of the account (`Authorization: Bearer` or `x-api-key`). A guard, so
    it runs before Litestar reads a body: a caller without a valid key never gets one read. The
    key's record is left in the connection's state for `provide_caller`."""
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    secret = token.strip() if scheme.lower() == "bearer" else ""
    secret = secret or connection.headers.get("x-api-key", "").strip()
    if not secret:
        raise NotAuthorizedException("an API key is required (Authorization: Bearer)")
    store: Store = connection.app.state.store
    key = await usable_key(store, secret)
    if key is None:
        raise NotAuthorizedException("invalid, revoked or expired API key")
    connection.state.caller = key


def provide_caller(request: Request[Any, Any, Any]) -> KeyRecord:
    """The key `api_key_guard` authenticated."""
    key: KeyRecord = request.state.caller
    return key


class ManagementController(Controller):
    path = "/api/v1/management"
    tags = ("management",)
    guards = [api_key_guard]  # noqa: RUF012 (Litestar's own API)
    dependencies = {"caller": Provide(provide_caller, sync_to_thread=False)}  # noqa: RUF012
    security = [{"apiKey": []}]  # noqa: RUF012

    @get("/generation", responses=documented(Generation, 404))
    async def get_generation(
        self,
        store: NamedDependency[Store],
        caller: NamedDependency[KeyRecord],
        generation_id: Annotated[str, QueryParameter(name="id", min_length=1, max_length=128)],
    ) -> Response[bytes]:
        """One request as metered (tokens, timings, itemized cost, retries, insurance claims),
        once the control plane has recorded it (usually well under a second after it
        finished)."""
        event = await get_usage(store, generation_id, caller.account_id)
        if event is None:
            raise NotFoundException(f"no generation {generation_id!r} for this account")
        claims = await request_claims(store, generation_id, caller.account_id)
        return exact_json(generation(event, claims))

    @get("/payg/balance", responses=documented(BalanceEnvelope))
    async def get_balance(
        self, store: NamedDependency[Store], caller: NamedDependency[KeyRecord]
    ) -> Response[bytes]:
        """The account's credits: purchased (top-up) and bonus (trial, insurance), in USD."""
        data = await account_balance(store, caller.account_id)
        return exact_json(BalanceEnvelope(data=data))

    @get("/usage", responses=documented(UsageEnvelope))
    async def get_usage_statistics(
        self,
        *,
        store: NamedDependency[Store],
        caller: NamedDependency[KeyRecord],
        starting_at: FromQuery[datetime | None] = None,
        ending_at: FromQuery[datetime | None] = None,
        bucket_width: FromQuery[BucketWidth] = "1d",
        model: Annotated[str | None, QueryParameter(max_length=200)] = None,
        key_id: Annotated[str | None, QueryParameter(max_length=128)] = None,
    ) -> Response[bytes]:
        """Requests, tokens and cost of the account over a time range (default: the last 7
        days), as a series of hourly or daily buckets (UTC) and per model and per key."""
        end = ending_at or now_utc()
        start = starting_at or end - timedelta(days=7)
        if start.tzinfo is None or end.tzinfo is None:
            raise ValidationException("starting_at and ending_at need a time zone (e.g. Z)")
        if not start < end or end - start > MAX_RANGE:
            raise ValidationException("starting_at must precede ending_at, at most 366 days")
        stats = await usage_statistics(
            store,
            caller.account_id,
            starting_at=start,
            ending_at=end,
            width=bucket_width,
            model=model,
            key_id=key_id,
        )
        return exact_json(UsageEnvelope(data=stats))
