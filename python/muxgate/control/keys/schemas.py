"""API keys as the admin API shows them: never the secret (only once, at creation or
rotation) and never its digest."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from muxgate.control.fields import Id, ModelPattern, Name, Timestamp, UsdNonNegative, usd
from muxgate.store import keys
from muxgate.store.ledger import now_utc
from muxgate.store.money import nano_to_usd

Rpm = Annotated[int, Meta(ge=1, le=10**9)]
Tpm = Annotated[int, Meta(ge=1, le=10**12)]


class Key(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account: str
    name: str
    hint: str
    """The secret's prefix and last four characters, to recognise it by."""
    models: list[str]
    """Allowed models: slugs or prefixes ending in `*`; empty allows every model."""
    rpm_limit: int | None
    tpm_limit: int | None
    credit_limit: str | None
    credit_limit_nano: int | None
    spent: str
    spent_nano: int
    expires_at: datetime | None
    enabled: bool
    revoked_at: datetime | None
    usable: bool
    """Enabled, not revoked, not expired and under its credit limit."""
    created_at: datetime

    @classmethod
    def of(cls, k: keys.KeyRecord) -> Key:
        return cls(
            id=k.id,
            account=k.account_id,
            name=k.name,
            hint=k.hint,
            models=k.models,
            rpm_limit=k.rpm_limit,
            tpm_limit=k.tpm_limit,
            credit_limit=usd(k.credit_limit_nano),
            credit_limit_nano=k.credit_limit_nano,
            spent=nano_to_usd(k.spent_nano),
            spent_nano=k.spent_nano,
            expires_at=k.expires_at,
            enabled=k.enabled,
            revoked_at=k.revoked_at,
            usable=k.usable(now_utc()),
            created_at=k.created_at,
        )


class KeyCreate(msgspec.Struct, frozen=True, kw_only=True):
    account: Id
    id: Id | None = None
    """Chosen by the server when absent."""
    name: Name = ""
    models: list[ModelPattern] = []
    rpm_limit: Rpm | None = None
    tpm_limit: Tpm | None = None
    credit_limit: UsdNonNegative | None = None
    """The key stops working once its charges reach this many USD."""
    expires_at: Timestamp | None = None
    enabled: bool = True


class KeyUpdate(msgspec.Struct, frozen=True, kw_only=True):
    name: Name | UnsetType = UNSET
    models: list[ModelPattern] | UnsetType = UNSET
    rpm_limit: Rpm | UnsetType | None = UNSET
    tpm_limit: Tpm | UnsetType | None = UNSET
    credit_limit: UsdNonNegative | UnsetType | None = UNSET
    expires_at: Timestamp | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET


class KeyCreated(msgspec.Struct, frozen=True, kw_only=True):
    key: Key
    secret: str
    """Shown this once: only its digest is stored."""
