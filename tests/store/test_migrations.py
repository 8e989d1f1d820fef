"""The shipped migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from muxgate.store import Store
from muxgate.store.tables import metadata


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_tables(store: Store) -> None:
    async with store.read() as conn:
        assert await conn.run_sync(_diff) == []


async def test_opening_again_is_a_no_op(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    again = await Store.open(url)
    await again.close()
