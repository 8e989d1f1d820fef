"""Alembic environment: runs on the connection the store hands over (see `upgrade`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from muxgate.store.tables import metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("muxgate migrations run through muxgate.store.migrations.upgrade")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
