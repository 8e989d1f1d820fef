"""The SQL schema of the control plane's store (SQLAlchemy Core), the same on SQLite and
PostgreSQL. Money columns are integer nano-USD; timestamps are UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

LEDGER_KINDS = ("trial", "top_up", "charge", "refund", "adjustment", "insurance", "expiry")

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite stores them naive, so the zone is put back here."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _created() -> Column[datetime]:
    return Column("created_at", UtcDateTime(), nullable=False)


accounts = Table(
    "accounts",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    # Manual block only; a balance at or below zero blocks as well, derived from the ledger.
    Column("blocked", Boolean, nullable=False, default=False),
    # The account opted into keeping (redacted) content of insurance cases; off by default.
    Column("retain_content", Boolean, nullable=False, default=False, server_default=false()),
    # The model (optionally `model:provider`) tried when every channel of a requested model
    # failed and the request names no fallback of its own.
    Column("default_fallback", String(400), nullable=True),
    _created(),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(128), primary_key=True),
    Column(
        "account_id", String(128), ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False
    ),
    Column("name", String(200), nullable=False, default=""),
    Column("digest", String(64), nullable=False, unique=True),
    Column("hint", String(32), nullable=False),
    Column("models", JSON, nullable=False),
    Column("rpm_limit", Integer, nullable=True),
    Column("tpm_limit", BigInteger, nullable=True),
    Column("credit_limit_nano", BigInteger, nullable=True),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    _created(),
    Index(None, "account_id"),
)

providers = Table(
    "providers",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("base_url", String(2000), nullable=False),
    Column("protocol", String(32), nullable=False),
    Column("credential_env", String(200), nullable=True),
    # Fernet token of the credential; never leaves the control plane except still encrypted.
    Column("credential_encrypted", Text, nullable=True),
    # Header name -> environment variable: values, which may be secrets, are never stored.
    Column("headers_env", JSON, nullable=False, server_default=text("'{}'")),
    Column("connect_timeout_ms", Integer, nullable=False),
    _created(),
    CheckConstraint(
        "credential_env IS NULL OR credential_encrypted IS NULL", name="one_credential"
    ),
)

models = Table(
    "models",
    metadata,
    Column("slug", String(200), primary_key=True),
    Column("context_length", BigInteger, nullable=True),
    Column("capabilities", JSON, nullable=False),
    # Attempts across the model's channels, the first included; the settings' when NULL.
    Column("max_attempts", Integer, nullable=True),
    # Defaults for the model's channels that set none; the built-in ones when NULL.
    Column("first_byte_timeout_ms", BigInteger, nullable=True),
    Column("idle_timeout_ms", BigInteger, nullable=True),
    Column("total_timeout_ms", BigInteger, nullable=True),
    _created(),
)

# Slugs and aliases share one namespace: one row per name makes a clash a key violation.
model_names = Table(
    "model_names",
    metadata,
    Column("name", String(200), primary_key=True),
    Column(
        "model_slug",
        String(200),
        ForeignKey("models.slug", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
    ),
    Column("is_alias", Boolean, nullable=False),
    Column("position", Integer, nullable=False),
    Index(None, "model_slug"),
)

channels = Table(
    "channels",
    metadata,
    Column("id", String(128), primary_key=True),
    Column(
        "model_slug",
        String(200),
        ForeignKey("models.slug", ondelete="RESTRICT", onupdate="CASCADE"),
        nullable=False,
    ),
    Column(
        "provider_id", String(128), ForeignKey("providers.id", ondelete="RESTRICT"), nullable=False
    ),
    Column("upstream_model", String(200), nullable=False),
    Column("weight", BigInteger, nullable=False),
    # Nano-USD per million tokens.
    Column("price_prompt_nano", BigInteger, nullable=False),
    Column("price_completion_nano", BigInteger, nullable=False),
    Column("price_cached_nano", BigInteger, nullable=False),
    # NULL: the model's timeout, else the built-in default.
    Column("first_byte_timeout_ms", BigInteger, nullable=True),
    Column("idle_timeout_ms", BigInteger, nullable=True),
    Column("total_timeout_ms", BigInteger, nullable=True),
    Column("enabled", Boolean, nullable=False),
    _created(),
    Index(None, "model_slug"),
    Index(None, "provider_id"),
)

insurance_rules = Table(
    "insurance_rules",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("description", String(500), nullable=False),
    Column("trigger", String(32), nullable=False),
    # The trigger's parameters, validated per trigger by `policies` (one JSON object, so a new
    # trigger needs no migration).
    Column("params", JSON, nullable=False),
    Column("models", JSON, nullable=False),
    Column("channels", JSON, nullable=False),
    Column("accounts", JSON, nullable=False),
    Column("payout_percent", Integer, nullable=False),
    Column("cap_per_request_nano", BigInteger, nullable=True),
    # Per account and UTC day, applied by the control plane when it books a claim.
    Column("cap_per_day_nano", BigInteger, nullable=True),
    Column("min_cost_nano", BigInteger, nullable=False, server_default="0"),
    Column("enabled", Boolean, nullable=False),
    _created(),
)

rate_limit_policies = Table(
    "rate_limit_policies",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("description", String(500), nullable=False),
    Column("applies_to", String(16), nullable=False),
    # Key ids (or account ids, per `applies_to`) the policy limits; empty: every one.
    Column("subjects", JSON, nullable=False),
    Column("models", JSON, nullable=False),
    Column("rpm", Integer, nullable=True),
    Column("tpm", BigInteger, nullable=True),
    Column("burst", Integer, nullable=True),
    Column("enabled", Boolean, nullable=False),
    _created(),
)

settings = Table(
    "settings",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", JSON, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "account_id", String(128), ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False
    ),
    Column("kind", String(16), nullable=False),
    Column("purchased_nano", BigInteger, nullable=False),
    Column("bonus_nano", BigInteger, nullable=False),
    Column("request_id", Text, nullable=True),
    # The key a charge was made through, so a key's spend is one indexed sum.
    Column("key_id", Text, nullable=True),
    # Set on expiry entries only: the bonus grant they expire (at most one each).
    Column("grant_id", BigId, ForeignKey("ledger_entries.id"), nullable=True, unique=True),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("note", String(1000), nullable=False),
    _created(),
    CheckConstraint("kind IN ('" + "', '".join(LEDGER_KINDS) + "')", name="kind"),
    CheckConstraint("bonus_nano <= 0 OR kind <> 'charge'", name="charge_not_positive"),
    Index(None, "account_id", "id"),
    Index(None, "key_id"),
)
# At most one entry of a kind per request, so charges are idempotent. Insurance credits are the
# exception: one per claim, and a request may have several claims (one per rule), which
# `insurance_claims` keeps unique instead.
Index(
    "uq_ledger_entries_kind_request_id",
    ledger_entries.c.kind,
    ledger_entries.c.request_id,
    unique=True,
    sqlite_where=ledger_entries.c.kind != "insurance",
    postgresql_where=ledger_entries.c.kind != "insurance",
)

# Running sums of the ledger, written in the same transaction as the entries they sum, so a
# balance or a key's spend is one row to read however long the history grows. The ledger stays
# the record; these are derived from it (migration 0003 computes them from the entries).
account_balances = Table(
    "account_balances",
    metadata,
    Column(
        "account_id",
        String(128),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("purchased_nano", BigInteger, nullable=False),
    Column("bonus_nano", BigInteger, nullable=False),
)

key_spend = Table(
    "key_spend",
    metadata,
    Column("key_id", Text, primary_key=True),
    # Charges made through the key, as a positive amount.
    Column("spent_nano", BigInteger, nullable=False),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("request_id", Text, primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("account_id", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("channel_id", Text, nullable=True),
    Column("provider_id", Text, nullable=True),
    Column("upstream_model", Text, nullable=True),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("local_prompt_tokens", BigInteger, nullable=False),
    Column("local_completion_tokens", BigInteger, nullable=False),
    Column("usage_source", Text, nullable=False),
    Column("cost_nano_usd", BigInteger, nullable=False),
    Column("price_prompt", BigInteger, nullable=False, server_default="0"),
    Column("price_completion", BigInteger, nullable=False, server_default="0"),
    Column("price_cached", BigInteger, nullable=False, server_default="0"),
    Column("ttft_ms", Float, nullable=True),
    Column("total_ms", Float, nullable=False),
    Column("output_tokens_per_second", Float, nullable=True),
    Column("max_chunk_gap_ms", Float, nullable=True),
    Column("gateway_overhead_us", BigInteger, nullable=False),
    Column("finish_reason", Text, nullable=True),
    Column("status", Text, nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("error_type", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("stream", Boolean, nullable=False),
    Column("cancelled", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("malformed_chunks", Integer, nullable=False),
    # JSON list of the channels that failed and were failed over (their live error rate).
    Column("failovers", Text, nullable=False, server_default="[]"),
    # The protocol the client spoke (the generation record's `api`).
    Column("api", Text, nullable=False, server_default="chat.completions"),
    Index(None, "created_at"),
    Index(None, "account_id", "created_at"),
    Index(None, "channel_id", "created_at"),
)

# One row per (request, rule) that triggered: the booked credit, possibly reduced (down to 0)
# by the rule's daily cap. Kept like the ledger (not purged with usage), so a replayed event
# never books twice.
insurance_claims = Table(
    "insurance_claims",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("request_id", Text, nullable=False),
    # No foreign key: a claim outlives the rule that made it.
    Column("rule_id", String(128), nullable=False),
    Column(
        "account_id", String(128), ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False
    ),
    Column("key_id", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("channel_id", Text, nullable=True),
    Column("trigger", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    # What the engine's verdict asked for, and what was credited after the daily cap.
    Column("requested_nano", BigInteger, nullable=False),
    Column("credit_nano", BigInteger, nullable=False),
    # When the request was made (the day its cap counts against), and when it was booked.
    Column("created_at", UtcDateTime(), nullable=False),
    Column("booked_at", UtcDateTime(), nullable=False),
    UniqueConstraint("request_id", "rule_id"),
    Index(None, "account_id", "created_at"),
    Index(None, "account_id", "rule_id", "created_at"),
)

# The content of a request that made a claim (or was sampled for the judge), for accounts that
# opted into retention, redacted before it is written. Purged with usage.
insurance_cases = Table(
    "insurance_cases",
    metadata,
    Column("request_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("model", Text, nullable=False),
    Column("surface", String(16), nullable=False),
    Column("verdicts", JSON, nullable=False),
    Column("measurements", JSON, nullable=False),
    Column("request", JSON, nullable=False),
    Column("answer", JSON, nullable=False),
    Column("judge_rules", JSON, nullable=False),
    Column("judged_at", UtcDateTime(), nullable=True),
    # While the judge owes a verdict: when it next asks (null once judged or never sampled),
    # how many passes failed, and what each judge said so far (its verdict or its failure).
    Column("judge_next_at", UtcDateTime(), nullable=True),
    Column("judge_attempts", Integer, nullable=False, server_default="0"),
    Column("judge_outcome", JSON, nullable=True),
    Index(None, "account_id", "created_at"),
    Index(None, "created_at"),
    Index(None, "judge_next_at"),
)

routing_versions = Table(
    "routing_versions",
    metadata,
    # One row: the version counter and the snapshot compiled at that version.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
    Column("snapshot", LargeBinary, nullable=True),
    Column("compiled_at", UtcDateTime(), nullable=True),
    CheckConstraint("id = 1", name="single_row"),
)
