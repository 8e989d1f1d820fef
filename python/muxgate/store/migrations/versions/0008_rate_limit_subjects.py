"""Rate limits: a policy may name the keys or accounts it limits (`subjects`), and the
per-model-family defaults of ZenMux's FAQ join the policies.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Written out rather than imported: a migration must keep meaning what it meant when shipped.
# The FAQ's "GPT models" are the models named GPT: the families are listed one by one because
# a pattern has only a trailing wildcard, and `openai/gpt-*` would also take the image models,
# whose default is lower and would then tie with it.
DEFAULT_POLICIES: list[dict[str, Any]] = [
    {
        "id": "gpt-models",
        "description": "ZenMux's default for GPT models: 60 requests per minute per key",
        "models": ["openai/gpt-3*", "openai/gpt-4*", "openai/gpt-5*", "openai/gpt-oss-*"],
        "rpm": 60,
    },
    {
        "id": "claude-models",
        "description": "ZenMux's default for Claude models: 100 requests per minute per key",
        "models": ["anthropic/claude-*"],
        "rpm": 100,
    },
    {
        "id": "image-models",
        "description": "ZenMux's default for image models: 20 requests per minute per key",
        "models": [
            "google/gemini-2.5-flash-image*",
            "google/gemini-3-pro-image*",
            "google/imagen-*",
            "openai/dall-e-*",
            "openai/gpt-image-*",
        ],
        "rpm": 20,
    },
]

_policies = sa.table(
    "rate_limit_policies",
    sa.column("id", sa.String()),
    sa.column("description", sa.String()),
    sa.column("applies_to", sa.String()),
    sa.column("subjects", sa.JSON()),
    sa.column("models", sa.JSON()),
    sa.column("rpm", sa.Integer()),
    sa.column("tpm", sa.BigInteger()),
    sa.column("burst", sa.Integer()),
    sa.column("enabled", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("rate_limit_policies") as batch:
        batch.add_column(sa.Column("subjects", sa.JSON(), nullable=True))
    conn = op.get_bind()
    conn.execute(_policies.update().values(subjects=[]))
    with op.batch_alter_table("rate_limit_policies") as batch:
        batch.alter_column("subjects", existing_type=sa.JSON(), nullable=False)
    existing = set(conn.execute(sa.select(_policies.c.id)).scalars())
    now = datetime.now(UTC)
    if conn.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    rows = [
        {
            **policy,
            "applies_to": "key",
            "subjects": [],
            "tpm": None,
            "burst": policy["rpm"],
            "enabled": True,
            "created_at": now,
        }
        for policy in DEFAULT_POLICIES
        if policy["id"] not in existing
    ]
    if rows:
        conn.execute(_policies.insert(), rows)


def downgrade() -> None:
    # The seeded policies stay: they are valid without subjects, and may have been edited.
    with op.batch_alter_table("rate_limit_policies") as batch:
        batch.drop_column("subjects")
