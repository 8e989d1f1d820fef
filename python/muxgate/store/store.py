"""The store: one async SQLAlchemy engine over SQLite (default) or PostgreSQL, migrated to
the current schema when opened, and the transaction helpers every query module uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from muxgate.credentials import CredentialCipher
from muxgate.store.migrations import upgrade

_IMMEDIATE = "muxgate_immediate"


def async_url(url: str) -> URL:
    """Accept plain `sqlite:`/`postgresql:` URLs and pick the async drivers for them."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.get_driver_name() != "aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in {"postgresql", "postgres"} and parsed.get_driver_name() != "asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in {"sqlite", "postgresql"}:
        raise ValueError(f"unsupported database URL {url!r}: use sqlite: or postgresql:")
    return parsed


def _sqlite_engine(url: URL) -> AsyncEngine:
    memory = url.database in {None, "", ":memory:"}
    kwargs: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours (see `_begin`).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 10000")
        if not memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        # A writer takes the write lock up front, so read-then-write (a balance, then the
        # charge it decides) cannot interleave with another writer.
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Store:
    """The control plane's SQL store. Open with `await Store.open(url)`."""

    def __init__(self, engine: AsyncEngine, cipher: CredentialCipher) -> None:
        self.engine = engine
        self.cipher = cipher
        self.dialect = engine.dialect.name
        self._writer = engine.execution_options(**{_IMMEDIATE: True})
        self._current: ContextVar[AsyncConnection | None] = ContextVar(
            f"muxgate_store_{id(self)}", default=None
        )

    @classmethod
    async def open(cls, url: str, *, secret_key: str | None = None) -> Store:
        """Connect and bring the schema to the newest migration. `secret_key` defaults to the
        `MUXGATE_SECRET_KEY` environment variable."""
        parsed = async_url(url)
        cipher = CredentialCipher(secret_key) if secret_key else CredentialCipher.from_env()
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed)
        else:
            engine = create_async_engine(parsed, pool_pre_ping=True)
        store = cls(engine, cipher)
        try:
            async with store.transaction() as conn:
                await conn.run_sync(upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on any error. Inside another
        `transaction()` of this store (same task) it joins that one, so several query
        functions compose into one atomic change (the config import does)."""
        current = self._current.get()
        if current is not None:
            yield current
            return
        async with self._writer.begin() as conn:
            token = self._current.set(conn)
            try:
                yield conn
            finally:
                self._current.reset(token)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only unit of work (rolled back at the end); joins an open `transaction()`."""
        current = self._current.get()
        if current is not None:
            yield current
            return
        async with self.engine.connect() as conn:
            yield conn
