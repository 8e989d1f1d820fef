"""Small helpers the query modules share: row <-> record conversion, updates that must hit
a row, and turning constraint violations into `Conflict` with the field at fault."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Column, Row, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store.errors import Conflict, NotFound

R = TypeVar("R", bound=msgspec.Struct)


def unset_free(values: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a partial update that were given (msgspec.UNSET marks the others)."""
    return {k: v for k, v in values.items() if v is not msgspec.UNSET}


def to_record(row: Row[Any] | Mapping[str, Any], record: type[R], **extra: Any) -> R:
    items = row._mapping.items() if isinstance(row, Row) else row.items()
    # Column keys may be `quoted_name`, a str subclass msgspec does not take as a key.
    data = {str(k): v for k, v in items}
    data.update(extra)
    return msgspec.convert(data, record, strict=False)


async def fetch(
    conn: AsyncConnection, table: Table, key: Column[Any], ident: str, what: str
) -> Row[Any]:
    row = (await conn.execute(table.select().where(key == ident))).one_or_none()
    if row is None:
        raise NotFound(what, ident)
    return row


async def update(
    conn: AsyncConnection,
    table: Table,
    key: Column[Any],
    ident: str,
    what: str,
    *,
    values: Mapping[str, Any],
) -> Row[Any]:
    if values:
        result = await conn.execute(
            table.update().where(key == ident).values(dict(values)).returning(table)
        )
        row: Row[Any] | None = result.one_or_none()
        if row is None:
            raise NotFound(what, ident)
        return row
    return await fetch(conn, table, key, ident, what)


async def delete(
    conn: AsyncConnection, table: Table, key: Column[Any], ident: str, what: str
) -> None:
    result = await conn.execute(table.delete().where(key == ident))
    if result.rowcount == 0:
        raise NotFound(what, ident)


@asynccontextmanager
async def conflict_on_integrity(message: str, field: str | None = None) -> AsyncIterator[None]:
    """A unique or foreign-key violation raced past the checks: report it as a conflict."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(message, field) from exc
