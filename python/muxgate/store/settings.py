"""Operator settings kept in the `settings` table, with their defaults in code."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store import tables as t
from muxgate.store.errors import Invalid
from muxgate.store.store import Store


class StoreSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting with its default; a row in the table overrides one field."""

    # New accounts are granted this bonus credit (nano-USD); 0 disables the trial.
    trial_credit_nano: int = 5_000_000_000
    trial_days: int = 30
    usage_retention_days: int = 90
    # Gateway behaviour carried in the routing snapshot.
    keepalive_ms: int = 10_000
    max_attempts: int = 3


_RANGES = {
    "trial_credit_nano": (0, 10**15),
    "trial_days": (0, 36_500),
    "usage_retention_days": (1, 36_500),
    "keepalive_ms": (1, 3_600_000),
    "max_attempts": (1, 20),
}


_FIELDS = set(StoreSettings.__struct_fields__)


async def load(conn: AsyncConnection) -> StoreSettings:
    rows = (await conn.execute(select(t.settings.c.name, t.settings.c.value))).all()
    values: dict[str, Any] = {name: value for name, value in rows if name in _FIELDS}
    return msgspec.convert(values, StoreSettings)


async def get_settings(store: Store) -> StoreSettings:
    async with store.read() as conn:
        return await load(conn)


def _validate(name: str, value: int) -> None:
    if name not in _FIELDS:
        raise Invalid(f"unknown setting {name!r}", name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("must be an integer", name)
    low, high = _RANGES[name]
    if not low <= value <= high:
        raise Invalid(f"must be between {low} and {high}", name)


async def update_settings(store: Store, **changes: int) -> StoreSettings:
    """Set some settings; the others keep their value."""
    for name, value in changes.items():
        _validate(name, value)
    async with store.transaction() as conn:
        for name, value in changes.items():
            await conn.execute(t.settings.delete().where(t.settings.c.name == name))
            await conn.execute(t.settings.insert().values(name=name, value=value))
        return await load(conn)
