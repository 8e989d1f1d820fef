"""Provider secrets only from the environment: a provider's extra headers become
`headers_env` (header name -> the environment variable the workers read its value from), and
the header values stored so far are dropped, since any of them may be a secret kept in clear.
Credentials inside a base URL (`https://user:password@host`) are cut out for the same reason.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_providers = sa.table("providers", sa.column("id"), sa.column("base_url"))


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def upgrade() -> None:
    # Plain ALTERs, not a batch copy: channels' foreign keys point at providers.
    op.add_column(
        "providers",
        sa.Column("headers_env", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
    )
    op.drop_column("providers", "headers")
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_providers.c.id, _providers.c.base_url).where(_providers.c.base_url.like("%@%"))
    )
    for provider_id, url in list(rows):
        cleaned = _without_credentials(url)
        if cleaned != url:
            conn.execute(
                _providers.update().where(_providers.c.id == provider_id).values(base_url=cleaned)
            )


def downgrade() -> None:
    # The header values are gone; the headers come back empty.
    op.add_column(
        "providers",
        sa.Column("headers", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
    )
    op.drop_column("providers", "headers_env")
