"""Initial schema: accounts, keys, catalog, policies, settings, ledger, usage, routing.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_table(
        "insurance_rules",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("payout_percent", sa.Integer(), nullable=False),
        sa.Column("cap_per_request_nano", sa.BigInteger(), nullable=True),
        sa.Column("cap_per_day_nano", sa.BigInteger(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insurance_rules")),
    )
    op.create_table(
        "models",
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("context_length", sa.BigInteger(), nullable=True),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_models")),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("base_url", sa.String(length=2000), nullable=False),
        sa.Column("protocol", sa.String(length=32), nullable=False),
        sa.Column("credential_env", sa.String(length=200), nullable=True),
        sa.Column("credential_encrypted", sa.Text(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("connect_timeout_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "credential_env IS NULL OR credential_encrypted IS NULL",
            name=op.f("ck_providers_one_credential"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
    )
    op.create_table(
        "rate_limit_policies",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("applies_to", sa.String(length=16), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.BigInteger(), nullable=True),
        sa.Column("burst", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_policies")),
    )
    op.create_table(
        "routing_versions",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=True),
        sa.Column("compiled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_routing_versions_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_versions")),
    )
    op.execute("INSERT INTO routing_versions (id, version) VALUES (1, 0)")
    op.create_table(
        "settings",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_settings")),
    )
    op.create_table(
        "usage_records",
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("channel_id", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.Text(), nullable=True),
        sa.Column("upstream_model", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("local_prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("local_completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("usage_source", sa.Text(), nullable=False),
        sa.Column("cost_nano_usd", sa.BigInteger(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("output_tokens_per_second", sa.Float(), nullable=True),
        sa.Column("max_chunk_gap_ms", sa.Float(), nullable=True),
        sa.Column("gateway_overhead_us", sa.BigInteger(), nullable=False),
        sa.Column("finish_reason", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("malformed_chunks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_usage_records")),
    )
    op.create_index(
        op.f("ix_usage_records_account_id_created_at"),
        "usage_records",
        ["account_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_usage_records_created_at"), "usage_records", ["created_at"], unique=False
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=32), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("rpm_limit", sa.Integer(), nullable=True),
        sa.Column("tpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("credit_limit_nano", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_api_keys_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_api_keys_digest")),
    )
    op.create_index(op.f("ix_api_keys_account_id"), "api_keys", ["account_id"], unique=False)

    op.create_table(
        "channels",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("model_slug", sa.String(length=200), nullable=False),
        sa.Column("provider_id", sa.String(length=128), nullable=False),
        sa.Column("upstream_model", sa.String(length=200), nullable=False),
        sa.Column("weight", sa.BigInteger(), nullable=False),
        sa.Column("price_prompt_nano", sa.BigInteger(), nullable=False),
        sa.Column("price_completion_nano", sa.BigInteger(), nullable=False),
        sa.Column("price_cached_nano", sa.BigInteger(), nullable=False),
        sa.Column("first_byte_timeout_ms", sa.BigInteger(), nullable=False),
        sa.Column("idle_timeout_ms", sa.BigInteger(), nullable=False),
        sa.Column("total_timeout_ms", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_slug"],
            ["models.slug"],
            name=op.f("fk_channels_model_slug_models"),
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_channels_provider_id_providers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
    )
    op.create_index(op.f("ix_channels_model_slug"), "channels", ["model_slug"], unique=False)
    op.create_index(op.f("ix_channels_provider_id"), "channels", ["provider_id"], unique=False)

    op.create_table(
        "ledger_entries",
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
        sa.UniqueConstraint("kind", "request_id", name=op.f("uq_ledger_entries_kind_request_id")),
    )
    op.create_index(
        op.f("ix_ledger_entries_account_id_id"),
        "ledger_entries",
        ["account_id", "id"],
        unique=False,
    )
    op.create_index(op.f("ix_ledger_entries_key_id"), "ledger_entries", ["key_id"], unique=False)

    op.create_table(
        "model_names",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model_slug", sa.String(length=200), nullable=False),
        sa.Column("is_alias", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_slug"],
            ["models.slug"],
            name=op.f("fk_model_names_model_slug_models"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_model_names")),
    )
    op.create_index(op.f("ix_model_names_model_slug"), "model_names", ["model_slug"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_model_names_model_slug"), table_name="model_names")

    op.drop_table("model_names")
    op.drop_index(op.f("ix_ledger_entries_key_id"), table_name="ledger_entries")
    op.drop_index(op.f("ix_ledger_entries_account_id_id"), table_name="ledger_entries")

    op.drop_table("ledger_entries")
    op.drop_index(op.f("ix_channels_provider_id"), table_name="channels")
    op.drop_index(op.f("ix_channels_model_slug"), table_name="channels")

    op.drop_table("channels")
    op.drop_index(op.f("ix_api_keys_account_id"), table_name="api_keys")

    op.drop_table("api_keys")
    op.drop_index(op.f("ix_usage_records_created_at"), table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_account_id_created_at"), table_name="usage_records")

    op.drop_table("usage_records")
    op.drop_table("settings")
    op.drop_table("routing_versions")
    op.drop_table("rate_limit_policies")
    op.drop_table("providers")
    op.drop_table("models")
    op.drop_table("insurance_rules")
    op.drop_table("accounts")
