"""Usage records keep the prices their cost was computed with, to itemize the bill.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = ("price_prompt", "price_completion", "price_cached")


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
