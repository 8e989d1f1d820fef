"""Settings as the admin API shows them; money as a USD decimal string beside its nano-USD."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from muxgate.control.fields import UsdNonNegative
from muxgate.store.money import nano_to_usd
from muxgate.store.settings import StoreSettings

Days = Annotated[int, Meta(ge=0, le=36_500)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    trial_credit: str
    """Bonus credit granted to every new account, USD; "0" disables the trial."""
    trial_credit_nano: int
    trial_days: int
    """Days until unspent trial credit expires."""
    usage_retention_days: int
    """Usage records older than this are purged."""
    keepalive_ms: int
    """Interval of the SSE comments that keep a client's stream open while providers think."""
    max_attempts: int
    """Channels tried per request before the last error is returned."""

    @classmethod
    def of(cls, s: StoreSettings) -> Settings:
        return cls(
            trial_credit=nano_to_usd(s.trial_credit_nano),
            trial_credit_nano=s.trial_credit_nano,
            trial_days=s.trial_days,
            usage_retention_days=s.usage_retention_days,
            keepalive_ms=s.keepalive_ms,
            max_attempts=s.max_attempts,
        )


class SettingsUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    trial_credit: UsdNonNegative | UnsetType = UNSET
    trial_days: Days | UnsetType = UNSET
    usage_retention_days: Annotated[int, Meta(ge=1, le=36_500)] | UnsetType = UNSET
    keepalive_ms: Annotated[int, Meta(ge=1, le=3_600_000)] | UnsetType = UNSET
    max_attempts: Annotated[int, Meta(ge=1, le=20)] | UnsetType = UNSET
