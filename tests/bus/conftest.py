"""Fixtures for the bus: a real redis-server per test (stoppable, to stage outages) and the Redis
and local buses over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from muxgate.bus import LocalBus, UsageBus
from muxgate.bus.redis import RedisBus
from servers import RedisServer, redis_server_binary, unavailable


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if redis_server_binary() is None:
        unavailable("redis-server binary not found on PATH (install the redis-server package)")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def redis_bus(redis_server: RedisServer) -> AsyncIterator[RedisBus]:
    bus = RedisBus.from_url(redis_server.url)
    try:
        yield bus
    finally:
        await bus.aclose()


@pytest.fixture
async def raw_redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A plain client, to look at (or tamper with) what the bus stored."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=["redis", "local"])
async def usage_bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UsageBus]:
    """Each usage-bus behaviour, checked against both implementations."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        redis_bus = RedisBus.from_url(server.url)
        try:
            yield redis_bus
        finally:
            await redis_bus.aclose()
        return
    local_bus = LocalBus(tmp_path / "local-bus")
    try:
        yield local_bus
    finally:
        local_bus.close()
