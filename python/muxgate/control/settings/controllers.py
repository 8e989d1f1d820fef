"""Reading and changing the operator settings."""

from __future__ import annotations

from litestar import Controller, get, patch
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import UNSET

from muxgate.control.deps import RoutingChanged
from muxgate.control.errors import responses
from muxgate.control.settings.schemas import Settings, SettingsUpdate
from muxgate.store import Store, settings
from muxgate.store.money import usd_to_nano


class SettingsController(Controller):
    path = "/settings"
    tags = ("settings",)

    @get("/", responses=responses())
    async def get_settings(self, store: NamedDependency[Store]) -> Settings:
        return Settings.of(await settings.get_settings(store))

    @patch("/", responses=responses(422))
    async def update_settings(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        data: JSONBody[SettingsUpdate],
    ) -> Settings:
        """Change some settings; the others keep their value. The gateway's own settings reach
        every worker with the next routing snapshot, published now."""
        changes: dict[str, int] = {
            name: value
            for name in ("trial_days", "usage_retention_days", "keepalive_ms", "max_attempts")
            if (value := getattr(data, name)) is not UNSET
        }
        if data.trial_credit is not UNSET:
            changes["trial_credit_nano"] = usd_to_nano(data.trial_credit, "trial_credit")
        updated = await settings.update_settings(store, **changes)
        await changed()
        return Settings.of(updated)
