"""Quality insurance: rules with per-trigger parameters, scope by account and a minimum cost;
the default rule set; accounts' content-retention opt-in; claims and cases; insurance credits
no longer limited to one ledger entry per request (one per claim).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

USD = 1_000_000_000
# Written out rather than imported: a migration must keep meaning what it meant when shipped.
DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "id": "failed-stream",
        "description": "The provider failed or cut the stream after its first byte",
        "trigger": "failed_stream",
        "params": {},
        "payout_percent": 100,
    },
    {
        "id": "high-latency",
        "description": "Time to first token above 5 s and above 3x the model's recent median",
        "trigger": "high_latency",
        "params": {"ttft_ms": 5000, "p50_multiple": 3.0},
        "payout_percent": 50,
    },
    {
        "id": "low-throughput",
        "description": "Under 10 output tokens per second over an answer of 200 tokens or more",
        "trigger": "low_throughput",
        "params": {"min_tokens_per_second": 10.0, "min_output_tokens": 200},
        "payout_percent": 30,
    },
    {
        "id": "unsatisfactory-content",
        "description": "Empty, invalid JSON or schema, bad tool calls, degenerate repetition",
        "trigger": "unsatisfactory_content",
        "params": {"repetition_ngram": 8, "repetition_max": 12},
        "payout_percent": 100,
    },
]

_rules = sa.table(
    "insurance_rules",
    sa.column("id", sa.String()),
    sa.column("description", sa.String()),
    sa.column("trigger", sa.String()),
    sa.column("threshold", sa.Float()),
    sa.column("params", sa.JSON()),
    sa.column("models", sa.JSON()),
    sa.column("channels", sa.JSON()),
    sa.column("accounts", sa.JSON()),
    sa.column("payout_percent", sa.Integer()),
    sa.column("cap_per_request_nano", sa.BigInteger()),
    sa.column("cap_per_day_nano", sa.BigInteger()),
    sa.column("min_cost_nano", sa.BigInteger()),
    sa.column("enabled", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)

_new_rules = sa.table(
    "insurance_rules", *(sa.column(c.name, c.type) for c in _rules.c if c.name != "threshold")
)


def _params(trigger: str, threshold: float | None) -> dict[str, Any]:
    """The old single threshold as the new trigger's parameters."""
    if trigger == "high_latency":
        return {"ttft_ms": max(1, round(threshold or 0))}
    if trigger == "low_throughput":
        return {"min_tokens_per_second": float(threshold or 0), "min_output_tokens": 50}
    if trigger == "unsatisfactory_content":
        return {"repetition_ngram": 8, "repetition_max": 12}
    return {}


def _reshape_rules() -> None:
    with op.batch_alter_table("insurance_rules") as batch:
        batch.add_column(sa.Column("params", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("accounts", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("min_cost_nano", sa.BigInteger(), nullable=False, server_default="0")
        )
    conn = op.get_bind()
    for ident, trigger, threshold in conn.execute(
        sa.select(_rules.c.id, _rules.c.trigger, _rules.c.threshold)
    ).all():
        conn.execute(
            _rules.update()
            .where(_rules.c.id == ident)
            .values(params=_params(trigger, threshold), accounts=[])
        )
    with op.batch_alter_table("insurance_rules") as batch:
        batch.alter_column("params", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("accounts", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("threshold")
    existing = set(conn.execute(sa.select(_rules.c.id)).scalars())
    now = datetime.now(UTC)
    if conn.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    rows = [
        {
            **rule,
            "models": [],
            "channels": [],
            "accounts": [],
            "cap_per_request_nano": None,
            "cap_per_day_nano": 10 * USD,
            "min_cost_nano": 0,
            "enabled": True,
            "created_at": now,
        }
        for rule in DEFAULT_RULES
        if rule["id"] not in existing
    ]
    if rows:
        conn.execute(_new_rules.insert(), rows)


_LEDGER_COLUMNS = (
    "id, account_id, kind, purchased_nano, bonus_nano, request_id, key_id, grant_id, "
    "expires_at, note, created_at"
)


def _ledger_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("purchased_nano", sa.BigInteger(), nullable=False),
        sa.Column("bonus_nano", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("key_id", sa.Text(), nullable=True),
        sa.Column("grant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "bonus_nano <= 0 OR kind <> 'charge'",
            name=op.f("ck_ledger_entries_charge_not_positive"),
        ),
        sa.CheckConstraint(
            "kind IN ('trial', 'top_up', 'charge', 'refund', 'adjustment', 'insurance', 'expiry')",
            name=op.f("ck_ledger_entries_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_ledger_entries_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_entries_grant_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("grant_id", name=op.f("uq_ledger_entries_grant_id")),
    )


def _one_insurance_entry_per_claim() -> None:
    """Replace the unique (kind, request_id) constraint by a unique index that leaves insurance
    entries out. SQLite cannot drop a constraint, and alembic's batch copy would drop the old
    table while the copy's `grant_id` rows still point into it (foreign keys are on inside this
    transaction); renaming the old table first re-points its own references, so it goes cleanly."""
    where = sa.text("kind <> 'insurance'")
    if op.get_bind().dialect.name == "sqlite":
        op.rename_table("ledger_entries", "ledger_entries_0003")
        _ledger_table("ledger_entries")
        op.execute(
            f"INSERT INTO ledger_entries ({_LEDGER_COLUMNS}) "
            f"SELECT {_LEDGER_COLUMNS} FROM ledger_entries_0003 ORDER BY id"
        )
        op.drop_table("ledger_entries_0003")
        op.create_index(
            op.f("ix_ledger_entries_account_id_id"), "ledger_entries", ["account_id", "id"]
        )
        op.create_index(op.f("ix_ledger_entries_key_id"), "ledger_entries", ["key_id"])
    else:
        op.drop_constraint("uq_ledger_entries_kind_request_id", "ledger_entries", type_="unique")
    op.create_index(
        "uq_ledger_entries_kind_request_id",
        "ledger_entries",
        ["kind", "request_id"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def upgrade() -> None:
    _reshape_rules()
    # A plain ALTER, not a batch copy: other tables' foreign keys point at accounts.
    op.add_column(
        "accounts",
        sa.Column("retain_content", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    _one_insurance_entry_per_claim()
    op.create_table(
        "insurance_claims",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("channel_id", sa.Text(), nullable=True),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_nano", sa.BigInteger(), nullable=False),
        sa.Column("credit_nano", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_insurance_claims_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insurance_claims")),
        sa.UniqueConstraint(
            "request_id", "rule_id", name=op.f("uq_insurance_claims_request_id_rule_id")
        ),
    )
    op.create_index(
        op.f("ix_insurance_claims_account_id_created_at"),
        "insurance_claims",
        ["account_id", "created_at"],
    )
    op.create_index(
        op.f("ix_insurance_claims_account_id_rule_id_created_at"),
        "insurance_claims",
        ["account_id", "rule_id", "created_at"],
    )
    op.create_table(
        "insurance_cases",
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("surface", sa.String(length=16), nullable=False),
        sa.Column("verdicts", sa.JSON(), nullable=False),
        sa.Column("measurements", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("judge_rules", sa.JSON(), nullable=False),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_insurance_cases")),
    )
    op.create_index(
        op.f("ix_insurance_cases_account_id_created_at"),
        "insurance_cases",
        ["account_id", "created_at"],
    )
    op.create_index(op.f("ix_insurance_cases_created_at"), "insurance_cases", ["created_at"])


def downgrade() -> None:
    op.drop_table("insurance_cases")
    op.drop_table("insurance_claims")
    op.drop_index("uq_ledger_entries_kind_request_id", table_name="ledger_entries")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.create_unique_constraint("uq_ledger_entries_kind_request_id", ["kind", "request_id"])
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("retain_content")
    with op.batch_alter_table("insurance_rules") as batch:
        batch.add_column(sa.Column("threshold", sa.Float(), nullable=True))
        batch.drop_column("min_cost_nano")
        batch.drop_column("accounts")
        batch.drop_column("params")
