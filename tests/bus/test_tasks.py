"""Stopping background tasks that lose a cancellation (as redis-py's sends can on Python 3.11)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from muxgate.bus.tasks import cancel_and_wait


async def test_a_task_that_swallows_its_cancellation_is_still_stopped() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed < 2:  # the way a lost cancellation looks from the task
                    swallowed += 1
                    continue
                raise

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task], retry_s=0.01), 2.0)
    assert task.cancelled()
    assert swallowed == 2


async def test_a_task_that_failed_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.ensure_future(broken())
    done = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="muxgate.bus"):
        await cancel_and_wait([task, done])
    assert done.cancelled()
    assert "boom" in caplog.text
