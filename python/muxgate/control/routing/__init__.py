"""Routing: compiling the store into the routing snapshot workers load, and the account's
own routing settings (`/api/v1/management/routing/settings`)."""

from muxgate.control.routing.compile import (
    compile_snapshot,
    medians_moved,
    recent_medians,
    stored_snapshot,
)

__all__ = [
    "compile_snapshot",
    "medians_moved",
    "recent_medians",
    "stored_snapshot",
]
