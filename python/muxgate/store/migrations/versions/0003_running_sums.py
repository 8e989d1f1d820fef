"""Running sums of the ledger (account balances, key spend), kept beside the entries so that
reading a balance no longer scans an account's whole history.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_balances",
        sa.Column(
            "account_id",
            sa.String(128),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("purchased_nano", sa.BigInteger(), nullable=False),
        sa.Column("bonus_nano", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "key_spend",
        sa.Column("key_id", sa.Text(), primary_key=True),
        sa.Column("spent_nano", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO account_balances (account_id, purchased_nano, bonus_nano) "
        "SELECT account_id, SUM(purchased_nano), SUM(bonus_nano) FROM ledger_entries "
        "GROUP BY account_id"
    )
    op.execute(
        "INSERT INTO key_spend (key_id, spent_nano) "
        "SELECT key_id, -SUM(purchased_nano + bonus_nano) FROM ledger_entries "
        "WHERE kind = 'charge' AND key_id IS NOT NULL GROUP BY key_id"
    )


def downgrade() -> None:
    op.drop_table("key_spend")
    op.drop_table("account_balances")
