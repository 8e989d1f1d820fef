"""Per-model timeouts: a model's are the default of its channels that set none, so a channel's
own may be NULL. A channel at the built-in defaults becomes NULL (the same until its model
sets its own); a custom one is kept.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Written out rather than imported: a migration must keep meaning what it meant when shipped.
DEFAULTS = {
    "first_byte_timeout_ms": 60_000,
    "idle_timeout_ms": 120_000,
    "total_timeout_ms": 600_000,
}

_models = sa.table("models", sa.column("slug"), *(sa.column(n, sa.BigInteger()) for n in DEFAULTS))
_channels = sa.table(
    "channels", sa.column("model_slug"), *(sa.column(n, sa.BigInteger()) for n in DEFAULTS)
)


def upgrade() -> None:
    # A plain ALTER, not a batch copy: other tables' foreign keys point at models.
    for name in DEFAULTS:
        op.add_column("models", sa.Column(name, sa.BigInteger(), nullable=True))
    with op.batch_alter_table("channels") as batch:
        for name in DEFAULTS:
            batch.alter_column(name, existing_type=sa.BigInteger(), nullable=True)
    for name, default in DEFAULTS.items():
        op.execute(_channels.update().where(_channels.c[name] == default).values({name: None}))


def downgrade() -> None:
    # A channel without its own timeout keeps the one it had: its model's, else the default.
    for name, default in DEFAULTS.items():
        model = (
            sa.select(_models.c[name])
            .where(_models.c.slug == _channels.c.model_slug)
            .scalar_subquery()
        )
        op.execute(
            _channels.update()
            .where(_channels.c[name].is_(None))
            .values({name: sa.func.coalesce(model, default)})
        )
    with op.batch_alter_table("channels") as batch:
        for name in DEFAULTS:
            batch.alter_column(name, existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table("models") as batch:
        for name in DEFAULTS:
            batch.drop_column(name)
