"""The account's insurance API, authenticated by any of its API keys like the rest of
`/api/v1/management`: claims and their aggregates, the content-retention setting, and the export
of its redacted cases at `/api/v1/insurance/cases`. Another account's data is never visible."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from litestar import Controller, Response, get, put
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import Stream

from muxgate.control.deps import RoutingChanged
from muxgate.control.errors import responses
from muxgate.control.fields import utc
from muxgate.control.management.controllers import (
    MAX_RANGE,
    api_key_guard,
    documented,
    exact_json,
    provide_caller,
)
from muxgate.store import Store, accounts, cases, claims
from muxgate.store.keys import KeyRecord
from muxgate.store.ledger import now_utc

from .schemas import (
    ClaimPage,
    ClaimPageEnvelope,
    ClaimSummaryEnvelope,
    ExportFormat,
    InsuranceSettings,
    InsuranceSettingsEnvelope,
    Trigger,
)
from .services import case_of, claim_item, cursor_of, parse_cursor, summary

From = Annotated[
    datetime | None,
    QueryParameter(name="from", description="Requests made at or after (RFC 3339, with zone)"),
]
To = Annotated[
    datetime | None, QueryParameter(name="to", description="Requests made before (RFC 3339)")
]
Model = Annotated[str | None, QueryParameter(max_length=200)]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
Cursor = Annotated[str | None, QueryParameter(max_length=64)]
DEFAULT_RANGE = timedelta(days=30)
# Money goes out as exact decimal JSON numbers, one case per line.
_encoder = msgspec.json.Encoder(decimal_format="number")


def time_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """`[from, to)`, by default the 30 days up to now; at most 366 days."""
    if (start is not None and start.tzinfo is None) or (end is not None and end.tzinfo is None):
        raise ValidationException("from and to need a time zone (e.g. Z)")
    end = utc(end, "to") or now_utc()
    start = utc(start, "from") or end - DEFAULT_RANGE
    if not start < end or end - start > MAX_RANGE:
        raise ValidationException("from must precede to, at most 366 days")
    return start, end


class InsuranceController(Controller):
    path = "/api/v1/management/insurance"
    tags = ("insurance",)
    guards = [api_key_guard]  # noqa: RUF012 (Litestar's own API)
    dependencies = {"caller": Provide(provide_caller, sync_to_thread=False)}  # noqa: RUF012
    security = [{"apiKey": []}]  # noqa: RUF012

    @get("/claims", responses=documented(ClaimPageEnvelope, 422))
    async def list_claims(
        self,
        *,
        store: NamedDependency[Store],
        caller: NamedDependency[KeyRecord],
        from_: From = None,
        to: To = None,
        trigger: FromQuery[Trigger | None] = None,
        model: Model = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> Response[bytes]:
        """The account's claims on requests made in `[from, to)` (default: the last 30 days),
        newest first, optionally of one trigger or model; page on with `next_cursor`."""
        start, end = time_range(from_, to)
        after = None
        if cursor is not None:
            after = parse_cursor(cursor)
            if after is None:
                raise ValidationException("cursor: not a cursor this API returned")
        found = await claims.list_claims(
            store,
            caller.account_id,
            starting_at=start,
            ending_at=end,
            trigger=trigger,
            model=model,
            limit=limit + 1,
            after=after,
        )
        page = found[:limit]
        more = len(found) > limit
        data = ClaimPage(
            claims=[claim_item(c) for c in page],
            next_cursor=cursor_of(page[-1]) if more else None,
        )
        return exact_json(ClaimPageEnvelope(data=data))

    @get("/summary", responses=documented(ClaimSummaryEnvelope, 422))
    async def get_summary(
        self,
        *,
        store: NamedDependency[Store],
        caller: NamedDependency[KeyRecord],
        from_: From = None,
        to: To = None,
        trigger: FromQuery[Trigger | None] = None,
        model: Model = None,
    ) -> Response[bytes]:
        """Total compensation, claim count, average per claim and per day, the daily series,
        and the split by trigger and by model (counts and credit), over `[from, to)`."""
        start, end = time_range(from_, to)
        groups = await claims.claim_groups(
            store, caller.account_id, starting_at=start, ending_at=end, trigger=trigger, model=model
        )
        return exact_json(ClaimSummaryEnvelope(data=summary(groups, start, end)))

    @get("/settings", responses=documented(InsuranceSettingsEnvelope))
    async def get_settings(
        self, store: NamedDependency[Store], caller: NamedDependency[KeyRecord]
    ) -> InsuranceSettingsEnvelope:
        """Whether the account keeps redacted cases of its claims."""
        account = await accounts.get_account(store, caller.account_id)
        return InsuranceSettingsEnvelope(
            data=InsuranceSettings(retain_content=account.retain_content)
        )

    @put("/settings", responses=documented(InsuranceSettingsEnvelope))
    async def put_settings(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        caller: NamedDependency[KeyRecord],
        data: JSONBody[InsuranceSettings],
    ) -> InsuranceSettingsEnvelope:
        """Opt into (or out of) content retention; the gateway follows within a second, and
        from then on no new case of the account is kept. Cases already kept stay until usage
        retention removes them."""
        account = await accounts.update_account(
            store, caller.account_id, retain_content=data.retain_content
        )
        await changed()
        return InsuranceSettingsEnvelope(
            data=InsuranceSettings(retain_content=account.retain_content)
        )


async def _lines(
    store: Store, account_id: str, start: datetime | None, end: datetime | None, fmt: str
) -> AsyncIterator[bytes]:
    first = True
    if fmt == "json":
        yield b"["
    async for record in cases.iter_cases(store, account_id, starting_at=start, ending_at=end):
        body = _encoder.encode(case_of(record))
        if fmt == "json":
            yield body if first else b"," + body
        else:
            yield body + b"\n"
        first = False
    if fmt == "json":
        yield b"]"


class CaseController(Controller):
    path = "/api/v1/insurance"
    tags = ("insurance",)
    guards = [api_key_guard]  # noqa: RUF012 (Litestar's own API)
    dependencies = {"caller": Provide(provide_caller, sync_to_thread=False)}  # noqa: RUF012
    security = [{"apiKey": []}]  # noqa: RUF012

    @get(
        "/cases",
        responses={
            200: ResponseSpec(
                None,
                description="One case per line (`jsonl`, application/x-ndjson) or a JSON array",
                media_type="application/x-ndjson",
            ),
            **responses(422),
        },
    )
    async def export_cases(
        self,
        *,
        store: NamedDependency[Store],
        caller: NamedDependency[KeyRecord],
        format_: Annotated[ExportFormat, QueryParameter(name="format")] = "jsonl",
        from_: From = None,
        to: To = None,
    ) -> Stream:
        """The account's redacted insurance cases of requests made in `[from, to)` (default:
        all kept), oldest first, streamed."""
        for value, name in ((from_, "from"), (to, "to")):
            if value is not None and value.tzinfo is None:
                raise ValidationException(f"{name} needs a time zone (e.g. Z)")
        start, end = utc(from_, "from"), utc(to, "to")
        media = "application/x-ndjson" if format_ == "jsonl" else "application/json"
        return Stream(_lines(store, caller.account_id, start, end, format_), media_type=media)
