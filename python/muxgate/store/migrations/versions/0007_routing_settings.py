"""Routing settings: an account's default fallback model and a model's own number of attempts.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTERs, not batch copies: other tables' foreign keys point at both tables.
    op.add_column("accounts", sa.Column("default_fallback", sa.String(length=400), nullable=True))
    op.add_column("models", sa.Column("max_attempts", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("max_attempts")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("default_fallback")
