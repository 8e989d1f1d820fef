"""Control-plane fixtures: a real SQLite store and the admin app over it, driven in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from muxgate.control import create_app
from muxgate.store import Store
from store.conftest import pg_url  # noqa: F401 (a fixture, for modules that run on both stores)

ADMIN_TOKEN = "admin-test-token"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET_KEY = "hFSN0DgkcDuoDUQRZ1Zk5ZsJ23hDk3n7tVx7vsdLRx8="


class Changes:
    """Counts the routing-change notifications the app sends."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path / 'control.db'}", secret_key=SECRET_KEY)
    yield opened
    await opened.close()


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def app(store: Store, changes: Changes) -> Litestar:
    return create_app(store, admin_token=ADMIN_TOKEN, on_change=changes)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as test_client:
        test_client.headers.update(AUTH)
        yield test_client
