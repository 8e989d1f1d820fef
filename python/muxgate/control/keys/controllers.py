"""API keys: create (the secret is returned once), read, update, revoke, rotate."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, UnsetType

from muxgate.control.deps import RoutingChanged
from muxgate.control.errors import responses
from muxgate.control.fields import Id, nano, utc
from muxgate.control.keys.schemas import Key, KeyCreate, KeyCreated, KeyUpdate
from muxgate.store import Store, keys


class KeyController(Controller):
    path = "/keys"
    tags = ("keys",)

    @get("/", responses=responses())
    async def list_keys(
        self, store: NamedDependency[Store], account: FromQuery[Id | None] = None
    ) -> list[Key]:
        return [Key.of(k) for k in await keys.list_keys(store, account)]

    @post("/", responses=responses(409, 422))
    async def create_key(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        data: JSONBody[KeyCreate],
    ) -> KeyCreated:
        record, secret = await keys.create_key(
            store,
            account_id=data.account,
            key_id=data.id,
            name=data.name,
            models=data.models,
            rpm_limit=data.rpm_limit,
            tpm_limit=data.tpm_limit,
            credit_limit_nano=nano(data.credit_limit, "credit_limit"),
            expires_at=utc(data.expires_at, "expires_at"),
            enabled=data.enabled,
        )
        await changed()
        return KeyCreated(key=Key.of(record), secret=secret)

    @get("/{key_id:str}", responses=responses(404))
    async def get_key(self, store: NamedDependency[Store], key_id: FromPath[str]) -> Key:
        return Key.of(await keys.get_key(store, key_id))

    @patch("/{key_id:str}", responses=responses(404, 409, 422))
    async def update_key(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        key_id: FromPath[str],
        data: JSONBody[KeyUpdate],
    ) -> Key:
        """Change limits, models, expiry or enable/disable; a revoked key cannot change."""
        fields: dict[str, Any] = {}
        if not isinstance(data.credit_limit, UnsetType):
            fields["credit_limit_nano"] = nano(data.credit_limit, "credit_limit")
        if not isinstance(data.expires_at, UnsetType):
            fields["expires_at"] = utc(data.expires_at, "expires_at")
        record = await keys.update_key(
            store,
            key_id,
            name=data.name,
            models=data.models,
            rpm_limit=data.rpm_limit,
            tpm_limit=data.tpm_limit,
            credit_limit_nano=fields.get("credit_limit_nano", UNSET),
            expires_at=fields.get("expires_at", UNSET),
            enabled=data.enabled,
        )
        await changed()
        return Key.of(record)

    @post("/{key_id:str}/revoke", status_code=200, responses=responses(404))
    async def revoke_key(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        key_id: FromPath[str],
    ) -> Key:
        """Final: the key is never accepted again."""
        record = await keys.revoke_key(store, key_id)
        await changed()
        return Key.of(record)

    @post("/{key_id:str}/rotate", status_code=200, responses=responses(404, 409))
    async def rotate_key(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        key_id: FromPath[str],
    ) -> KeyCreated:
        """A new secret for the same key; the old secret stops working."""
        record, secret = await keys.rotate_key(store, key_id)
        await changed()
        return KeyCreated(key=Key.of(record), secret=secret)
