"""The control plane's SQL store: schema, migrations and one query module per concept."""

from muxgate.store.errors import (
    Conflict,
    DatabaseUnavailable,
    Invalid,
    NotFound,
    SecretKeyMissing,
    StoreError,
)
from muxgate.store.store import Store

__all__ = [
    "Conflict",
    "DatabaseUnavailable",
    "Invalid",
    "NotFound",
    "SecretKeyMissing",
    "Store",
    "StoreError",
]
