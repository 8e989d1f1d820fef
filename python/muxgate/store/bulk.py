"""Driver-level bulk writes for the metering path: one executemany per statement, bypassing
SQLAlchemy's per-row parameter processing (the SQL is the same on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection


def placeholders(conn: AsyncConnection, count: int) -> str:
    if conn.dialect.paramstyle == "qmark":
        return ", ".join("?" * count)
    return ", ".join(f"${i}" for i in range(1, count + 1))  # asyncpg: numeric_dollar


async def insert_rows(
    conn: AsyncConnection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert `rows`, skipping those that conflict with a unique key."""
    if not rows:
        return
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({placeholders(conn, len(columns))}) ON CONFLICT DO NOTHING"
    )
    await conn.exec_driver_sql(sql, rows)


async def add_to_sums(
    conn: AsyncConnection,
    table: str,
    key: str,
    columns: Sequence[str],
    deltas: Mapping[str, tuple[int, ...]],
) -> None:
    """Add `deltas` (key -> one amount per column) to the running sums in `table`, creating
    the rows that do not exist yet."""
    if not deltas:
        return
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
    sql = (
        f"INSERT INTO {table} ({key}, {', '.join(columns)}) "
        f"VALUES ({placeholders(conn, len(columns) + 1)}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )
    await conn.exec_driver_sql(sql, [(k, *v) for k, v in sorted(deltas.items())])
