"""The shipped migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, text

from muxgate.store import Store, keys, ledger
from muxgate.store.migrations import upgrade
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


async def test_running_sums_are_computed_from_an_existing_ledger(tmp_path: Path) -> None:
    """A store written before the running sums existed gets them from its entries."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        upgrade(conn, "0002")
        conn.execute(
            text(
                "INSERT INTO accounts (id, name, blocked, created_at) "
                "VALUES ('a', '', 0, '2030-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO ledger_entries (account_id, kind, purchased_nano, bonus_nano, "
                "request_id, key_id, note, created_at) VALUES "
                "('a', 'top_up', 100, 0, NULL, NULL, '', '2030-01-01'), "
                "('a', 'trial', 0, 50, NULL, NULL, '', '2030-01-01'), "
                "('a', 'charge', -7, -30, 'r1', 'k', '', '2030-01-01'), "
                "('a', 'charge', 0, -5, 'r2', 'k', '', '2030-01-01')"
            )
        )
    engine.dispose()
    store = await Store.open(url)
    try:
        assert await ledger.balance(store, "a") == ledger.Balance(purchased_nano=93, bonus_nano=15)
        async with store.read() as conn:
            assert await keys.spent(conn, ["k"]) == {"k": 42}
    finally:
        await store.close()
