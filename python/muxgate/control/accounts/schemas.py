"""Accounts and their ledger as the admin API shows them. Amounts are USD decimal strings
with the exact nano-USD integers beside them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar.params import QueryParameter
from msgspec import UNSET, UnsetType

from muxgate.control.fields import FallbackModel, Id, Name, Note, Timestamp, Usd
from muxgate.store import accounts, ledger
from muxgate.store.money import nano_to_usd


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    total: str
    purchased: str
    bonus: str
    total_nano: int
    purchased_nano: int
    bonus_nano: int

    @classmethod
    def of(cls, b: ledger.Balance) -> Balance:
        return cls(
            total=nano_to_usd(b.total_nano),
            purchased=nano_to_usd(b.purchased_nano),
            bonus=nano_to_usd(b.bonus_nano),
            total_nano=b.total_nano,
            purchased_nano=b.purchased_nano,
            bonus_nano=b.bonus_nano,
        )


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    blocked: bool
    """Blocked by an operator."""
    effectively_blocked: bool
    """Blocked by an operator or by a balance at or below zero: what the gateway applies."""
    retain_content: bool
    """Keeps redacted insurance cases of its requests (the account's own choice, off by
    default)."""
    default_fallback: str | None
    """The model tried when every channel of a requested model failed and the request names
    no fallback of its own (`provider.fallback: "false"` turns it off for a request)."""
    balance: Balance
    created_at: datetime

    @classmethod
    def of(cls, a: accounts.AccountRecord) -> Account:
        return cls(
            id=a.id,
            name=a.name,
            blocked=a.blocked,
            effectively_blocked=a.effectively_blocked,
            retain_content=a.retain_content,
            default_fallback=a.default_fallback,
            balance=Balance.of(a.balance),
            created_at=a.created_at,
        )


class AccountCreate(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    name: Name = ""
    blocked: bool = False
    default_fallback: FallbackModel | None = None
    """An existing model slug or alias, optionally `:provider` naming a provider or channel of
    that model."""


class AccountUpdate(msgspec.Struct, frozen=True, kw_only=True):
    name: Name | UnsetType = UNSET
    blocked: bool | UnsetType = UNSET
    retain_content: bool | UnsetType = UNSET
    default_fallback: FallbackModel | UnsetType | None = UNSET
    """A model as in `AccountCreate`; null clears it."""


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    account: str
    kind: ledger.LedgerKind
    purchased: str
    bonus: str
    purchased_nano: int
    bonus_nano: int
    request_id: str | None
    key_id: str | None
    expires_at: datetime | None
    note: str
    created_at: datetime

    @classmethod
    def of(cls, e: ledger.LedgerEntry) -> LedgerEntry:
        return cls(
            id=e.id,
            account=e.account_id,
            kind=e.kind,
            purchased=nano_to_usd(e.purchased_nano),
            bonus=nano_to_usd(e.bonus_nano),
            purchased_nano=e.purchased_nano,
            bonus_nano=e.bonus_nano,
            request_id=e.request_id,
            key_id=e.key_id,
            expires_at=e.expires_at,
            note=e.note,
            created_at=e.created_at,
        )


class LedgerEntryCreate(msgspec.Struct, frozen=True, kw_only=True):
    """A top-up or refund (positive) or an adjustment (either sign) of one bucket."""

    kind: Literal["top_up", "adjustment", "refund"]
    amount: Usd
    bucket: Literal["purchased", "bonus"] = "purchased"
    expires_at: Timestamp | None = None
    """Only for a positive bonus grant: when its unspent part expires."""
    note: Note = ""


# Query parameters state their range with QueryParameter: Litestar applies a msgspec `Meta`
# only inside a body, so a number past the store's 64 bits would reach the query.
LedgerLimit = Annotated[int, QueryParameter(ge=1, le=1000)]
LedgerCursor = Annotated[int | None, QueryParameter(ge=1, le=2**62)]
