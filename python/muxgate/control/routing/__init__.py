"""Routing: compiling the store into the routing snapshot workers load."""

from muxgate.control.routing.compile import compile_snapshot, next_key_expiry, stored_snapshot

__all__ = ["compile_snapshot", "next_key_expiry", "stored_snapshot"]
