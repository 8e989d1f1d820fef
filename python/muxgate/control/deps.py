"""What controllers receive by injection: the store and the routing-change notifier."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from litestar.datastructures import State

from muxgate.store import Store

log = logging.getLogger("muxgate.control")


class RoutingChanged:
    """Awaited after every accepted change the routing snapshot depends on. The change is
    already committed, so a failing callback is logged rather than turned into an error."""

    def __init__(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._callback = callback

    async def __call__(self) -> None:
        try:
            await self._callback()
        except Exception:
            log.exception("routing change callback failed")


def provide_store(state: State) -> Store:
    store: Store = state.store
    return store


def provide_changed(state: State) -> RoutingChanged:
    changed: RoutingChanged = state.routing_changed
    return changed
