"""The store: one async SQLAlchemy engine over SQLite (default) or PostgreSQL, migrated to
the current schema when opened, and the transaction helpers every query module uses."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from alembic.util import CommandError
from sqlalchemy import event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from muxgate.credentials import CredentialCipher
from muxgate.store.errors import DatabaseUnavailable
from muxgate.store.migrations import upgrade

_IMMEDIATE = "muxgate_immediate"
URL_FORMS = "sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
# A server that never answers fails the command in seconds, not after asyncpg's minute.
CONNECT_TIMEOUT_SECONDS = 10
_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


def async_url(url: str) -> URL:
    """Accept plain `sqlite:`/`postgresql:` URLs and pick the async drivers for them."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not repeated: the text may hold a password.
        raise DatabaseUnavailable(f"malformed database URL; expected {URL_FORMS}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.get_driver_name() != "aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in {"postgresql", "postgres"} and parsed.get_driver_name() != "asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in {"sqlite", "postgresql"}:
        raise DatabaseUnavailable(
            f"unsupported database URL scheme {backend!r}; expected {URL_FORMS}"
        )
    return parsed


def shown(url: URL) -> str:
    """The URL as messages show it: the password hidden, the driver as the user wrote it."""
    plain = url.set(drivername=url.get_backend_name())
    return plain.render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    return None if url.database in {None, "", ":memory:"} else Path(str(url.database))


def _probe_sqlite(url: URL, path: Path) -> None:
    """Open the file once before the engine does: aiosqlite, failing to connect, leaves its
    worker thread to report on a closed event loop (a traceback after the command's message)."""
    try:
        sqlite3.connect(path).close()
    except sqlite3.Error as exc:
        raise _unavailable(url, exc) from exc


def _unavailable(url: URL, exc: BaseException) -> DatabaseUnavailable:
    """One line naming why `url` could not be opened, never with its password."""
    if isinstance(exc, ConnectionRefusedError):
        reason = f"connection refused by {url.host or 'localhost'}:{url.port or 5432}"
    elif isinstance(exc, socket.gaierror):
        reason = f"unknown host {url.host!r}"
    elif isinstance(exc, TimeoutError):
        reason = f"no answer from {url.host}:{url.port or 5432} in {CONNECT_TIMEOUT_SECONDS} s"
    elif isinstance(exc, DBAPIError):
        reason = str(exc.orig if exc.orig is not None else exc)
    elif isinstance(exc, sqlite3.Error):
        reason = str(exc)
    elif isinstance(exc, CommandError):
        reason = f"its schema is not one this version of muxgate knows ({exc})"
    else:
        reason = str(exc) or type(exc).__name__
    # The first line is the server's own sentence; the rest is SQLAlchemy's background link.
    reason = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    if (path := _sqlite_file(url)) is not None and "unable to open" in reason:
        reason += f" (is {path.parent} an existing, writable directory?)"
    return DatabaseUnavailable(f"cannot open the database {shown(url)}: {reason}")


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
    async def open(cls, url: str, *, secret_key: str | None = None, create: bool = True) -> Store:
        """Connect and bring the schema to the newest migration. `secret_key` defaults to the
        `MUXGATE_SECRET_KEY` environment variable. Without `create`, a SQLite file that does
        not exist is refused instead of created (reading a mistyped path must not find an
        empty store). Every reason the database cannot be opened is a `DatabaseUnavailable`."""
        parsed = async_url(url)
        path = _sqlite_file(parsed) if parsed.get_backend_name() == "sqlite" else None
        if not create and path is not None and not path.exists():
            raise DatabaseUnavailable(f"no SQLite database at {path.resolve()}")
        if path is not None:
            _probe_sqlite(parsed, path)
        cipher = CredentialCipher(secret_key) if secret_key else CredentialCipher.from_env()
        try:
            if parsed.get_backend_name() == "sqlite":
                engine = _sqlite_engine(parsed)
            else:
                engine = create_async_engine(
                    parsed,
                    pool_pre_ping=True,
                    connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
                )
        except ImportError as exc:
            driver = _DRIVERS[parsed.get_backend_name()]
            raise DatabaseUnavailable(
                f"the {driver} driver for {shown(parsed)} is not installed (pip install {driver})"
            ) from exc
        store = cls(engine, cipher)
        try:
            async with store.transaction() as conn:
                await conn.run_sync(upgrade)
        except (OSError, DBAPIError, CommandError) as exc:
            await engine.dispose()
            raise _unavailable(parsed, exc) from exc
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
