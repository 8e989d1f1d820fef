"""The channels each request failed over from, so a channel's live error rate counts the
failures another channel made up for.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("failovers", sa.Text(), nullable=False, server_default="[]"))
    op.create_index(
        op.f("ix_usage_records_channel_id_created_at"),
        "usage_records",
        ["channel_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_records_channel_id_created_at"), table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("failovers")
