"""The hallucination judge's bookkeeping on insurance cases: when a sampled case is next due,
how many passes failed, and what the judges said (or why they could not say).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("insurance_cases") as batch:
        batch.add_column(sa.Column("judge_next_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("judge_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("judge_outcome", sa.JSON(), nullable=True))
    op.create_index(op.f("ix_insurance_cases_judge_next_at"), "insurance_cases", ["judge_next_at"])
    # Cases sampled before the judge existed are due at once, oldest first.
    op.execute(
        "UPDATE insurance_cases SET judge_next_at = created_at "
        "WHERE judged_at IS NULL AND CAST(judge_rules AS TEXT) <> '[]'"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_insurance_cases_judge_next_at"), table_name="insurance_cases")
    with op.batch_alter_table("insurance_cases") as batch:
        batch.drop_column("judge_outcome")
        batch.drop_column("judge_attempts")
        batch.drop_column("judge_next_at")
