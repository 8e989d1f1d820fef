"""The account's routing settings, authenticated by any of its API keys like the rest of
`/api/v1/management`: its default fallback model."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from muxgate.control.deps import RoutingChanged
from muxgate.control.management.controllers import api_key_guard, documented, provide_caller
from muxgate.store import Store, accounts
from muxgate.store.keys import KeyRecord

from .schemas import RoutingSettings, RoutingSettingsEnvelope


class RoutingSettingsController(Controller):
    path = "/api/v1/management/routing"
    tags = ("routing",)
    guards = [api_key_guard]  # noqa: RUF012 (Litestar's own API)
    dependencies = {"caller": Provide(provide_caller, sync_to_thread=False)}  # noqa: RUF012
    security = [{"apiKey": []}]  # noqa: RUF012

    @get("/settings", responses=documented(RoutingSettingsEnvelope))
    async def get_settings(
        self, store: NamedDependency[Store], caller: NamedDependency[KeyRecord]
    ) -> RoutingSettingsEnvelope:
        """The account's default fallback model."""
        account = await accounts.get_account(store, caller.account_id)
        return RoutingSettingsEnvelope(
            data=RoutingSettings(default_fallback=account.default_fallback)
        )

    @put("/settings", responses=documented(RoutingSettingsEnvelope, 422))
    async def put_settings(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        caller: NamedDependency[KeyRecord],
        data: JSONBody[RoutingSettings],
    ) -> RoutingSettingsEnvelope:
        """Set (or clear, with null) the default fallback: an existing model slug or alias,
        optionally `:provider` naming a provider or channel of it (422 otherwise). The gateway
        follows within a second."""
        account = await accounts.update_account(
            store, caller.account_id, default_fallback=data.default_fallback
        )
        await changed()
        return RoutingSettingsEnvelope(
            data=RoutingSettings(default_fallback=account.default_fallback)
        )
