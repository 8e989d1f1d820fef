"""Stopping the background tasks that talk to the bus.

redis-py bounds every command it sends with `asyncio.wait_for`, which on Python 3.11 returns
the inner result and drops a cancellation that arrives just as the send finishes (CPython
gh-86296). A task cancelled once may then go on with its loop, and a shutdown that awaits it
would hang until the process is killed, with its unsent usage still in memory. So tasks are
cancelled again until they have ended."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("muxgate.bus")


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], retry_s: float = 0.2) -> None:
    """Cancel `tasks` and return once every one has ended; an error one ended with (rather
    than its cancellation) is logged, as nothing else would see it."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_s)
    for task in tasks:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task %r failed", task, exc_info=exc)
