"""Store fixtures: every store test runs against SQLite (a fresh file) and PostgreSQL (a
private database created for the session, emptied before each test)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import delete, insert

import factories
from muxgate.store import Store
from muxgate.store import tables as t
from muxgate.wire import UsageEvent
from servers import unavailable

SECRET_KEY = "hFSN0DgkcDuoDUQRZ1Zk5ZsJ23hDk3n7tVx7vsdLRx8="
T0 = datetime(2030, 1, 1, tzinfo=UTC)
EventFactory = Callable[..., UsageEvent]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


async def _admin_async(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _admin(sql: str) -> None:
    """Run one statement on the admin database, on a thread of its own: the fixture may be
    first requested from inside a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin_async(sql)).result()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A private PostgreSQL database for this test session, dropped at the end."""
    name = "muxgate_store_" + secrets.token_hex(6)
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


async def empty(store: Store) -> None:
    async with store.transaction() as conn:
        for table in reversed(t.metadata.sorted_tables):
            await conn.execute(delete(table))
        await conn.execute(insert(t.routing_versions).values(id=1, version=0))


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    opened = await Store.open(url, secret_key=SECRET_KEY)
    await empty(opened)
    yield opened
    await opened.close()


def usage_event(
    request_id: str, account: str, cost: int, key: str = "k1", created: datetime = T0
) -> UsageEvent:
    return factories.usage_event(
        request_id,
        created_ms=int(created.timestamp() * 1000),
        account_id=account,
        key_id=key,
        cost_nano_usd=cost,
        stream=True,
    )


@pytest.fixture
def event() -> EventFactory:
    """Builds usage events: `event(request_id, account, cost, key="k1", created=T0)`."""
    return usage_event
