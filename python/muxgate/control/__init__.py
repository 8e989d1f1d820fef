"""The control plane: the admin API (Litestar) and the routing snapshot compiler."""

from muxgate.control.app import create_app
from muxgate.control.routing import compile_snapshot

__all__ = ["compile_snapshot", "create_app"]
