"""API keys: the secret is shown once at creation or rotation; the store keeps only its
SHA-256 digest and a hint (prefix and last four characters) to recognise it by."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Row, and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store import tables as t
from muxgate.store.errors import Conflict, Invalid
from muxgate.store.ledger import now_utc
from muxgate.store.rows import conflict_on_integrity, fetch, to_record, unset_free, update
from muxgate.store.store import Store

SECRET_PREFIX = "sk-mx-"


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account_id: str
    name: str
    digest: str
    hint: str
    models: list[str]
    rpm_limit: int | None
    tpm_limit: int | None
    credit_limit_nano: int | None
    expires_at: datetime | None
    enabled: bool
    revoked_at: datetime | None
    created_at: datetime
    spent_nano: int = 0
    """Sum of the charges made through this key."""

    def usable(self, now: datetime) -> bool:
        """May the gateway accept this key right now?"""
        return (
            self.enabled
            and self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)
            and (self.credit_limit_nano is None or self.spent_nano < self.credit_limit_nano)
        )


def new_secret() -> str:
    # 32 random bytes -> 43 urlsafe characters.
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hint_of(secret: str) -> str:
    prefix = SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else secret[:3]
    return f"{prefix}...{secret[-4:]}"


def check_model_patterns(patterns: Sequence[str], field: str = "models") -> list[str]:
    """Exact slugs or prefixes ending in `*`: the engine's matcher knows no other wildcard."""
    for i, pattern in enumerate(patterns):
        if not pattern or "*" in pattern[:-1]:
            raise Invalid("only a trailing '*' is a wildcard", f"{field}[{i}]")
    if len(set(patterns)) != len(patterns):
        raise Invalid("duplicate pattern", field)
    return list(patterns)


def _check_limits(values: dict[str, Any]) -> None:
    # A rate of 0 would be a disabled key in disguise; `enabled` says that plainly.
    for name in ("rpm_limit", "tpm_limit"):
        value = values.get(name)
        if value is not None and value < 1:
            raise Invalid("must be at least 1", name)
    credit = values.get("credit_limit_nano")
    if credit is not None and credit < 0:
        raise Invalid("must not be negative", "credit_limit_nano")


async def spent(conn: AsyncConnection, key_ids: Sequence[str] | None) -> dict[str, int]:
    """Charges made through each key, as a positive amount; `None` means every key. Read from
    the running sums the charges update."""
    ks = t.key_spend
    query = select(ks.c.key_id, ks.c.spent_nano)
    if key_ids is not None:
        if not key_ids:
            return {}
        query = query.where(ks.c.key_id.in_(sorted(set(key_ids))))
    return {k: int(total) for k, total in await conn.execute(query)}


async def _records(
    conn: AsyncConnection, rows: Sequence[Row[Any]], *, everything: bool = False
) -> list[KeyRecord]:
    spend = await spent(conn, None if everything else [r.id for r in rows])
    return [to_record(r, KeyRecord, spent_nano=spend.get(r.id, 0)) for r in rows]


async def load_key(conn: AsyncConnection, key_id: str) -> KeyRecord:
    return (await _records(conn, [await fetch(conn, t.api_keys, t.api_keys.c.id, key_id, "key")]))[
        0
    ]


async def insert_key(
    conn: AsyncConnection,
    *,
    key_id: str | None,
    account_id: str,
    digest: str,
    hint: str,
    name: str = "",
    models: Sequence[str] = (),
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    credit_limit_nano: int | None = None,
    expires_at: datetime | None = None,
    enabled: bool = True,
    now: datetime,
) -> str:
    key_id = key_id or "key_" + secrets.token_hex(8)
    values = {
        "id": key_id,
        "account_id": account_id,
        "name": name,
        "digest": digest,
        "hint": hint,
        "models": check_model_patterns(models),
        "rpm_limit": rpm_limit,
        "tpm_limit": tpm_limit,
        "credit_limit_nano": credit_limit_nano,
        "expires_at": expires_at,
        "enabled": enabled,
        "revoked_at": None,
        "created_at": now,
    }
    _check_limits(values)
    if (await conn.execute(select(exists().where(t.api_keys.c.id == key_id)))).scalar():
        raise Conflict(f"key {key_id!r} already exists", "id")
    account = select(exists().where(t.accounts.c.id == account_id))
    if not (await conn.execute(account)).scalar():
        raise Invalid(f"unknown account {account_id!r}", "account")
    if (await conn.execute(select(exists().where(t.api_keys.c.digest == digest)))).scalar():
        raise Conflict("another key has the same secret", "secret")
    async with conflict_on_integrity(f"key {key_id!r} already exists", "id"):
        await conn.execute(t.api_keys.insert().values(values))
    return key_id


async def create_key(
    store: Store,
    *,
    account_id: str,
    key_id: str | None = None,
    name: str = "",
    models: Sequence[str] = (),
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    credit_limit_nano: int | None = None,
    expires_at: datetime | None = None,
    enabled: bool = True,
    now: datetime | None = None,
) -> tuple[KeyRecord, str]:
    """A new key and its secret, which is returned here and never again."""
    secret = new_secret()
    async with store.transaction() as conn:
        key_id = await insert_key(
            conn,
            key_id=key_id,
            account_id=account_id,
            digest=digest_of(secret),
            hint=hint_of(secret),
            name=name,
            models=models,
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
            credit_limit_nano=credit_limit_nano,
            expires_at=expires_at,
            enabled=enabled,
            now=now or now_utc(),
        )
        return await load_key(conn, key_id), secret


async def get_key(store: Store, key_id: str) -> KeyRecord:
    async with store.read() as conn:
        return await load_key(conn, key_id)


async def list_keys(store: Store, account_id: str | None = None) -> list[KeyRecord]:
    query = t.api_keys.select().order_by(t.api_keys.c.id)
    if account_id is not None:
        query = query.where(t.api_keys.c.account_id == account_id)
    async with store.read() as conn:
        rows = (await conn.execute(query)).all()
        return await _records(conn, rows, everything=account_id is None)


async def _live(conn: AsyncConnection, key_id: str) -> None:
    row = await fetch(conn, t.api_keys, t.api_keys.c.id, key_id, "key")
    if row.revoked_at is not None:
        raise Conflict(f"key {key_id!r} is revoked", "id")


async def update_key(
    store: Store,
    key_id: str,
    *,
    name: str | msgspec.UnsetType = msgspec.UNSET,
    models: Sequence[str] | msgspec.UnsetType = msgspec.UNSET,
    rpm_limit: int | msgspec.UnsetType | None = msgspec.UNSET,
    tpm_limit: int | msgspec.UnsetType | None = msgspec.UNSET,
    credit_limit_nano: int | msgspec.UnsetType | None = msgspec.UNSET,
    expires_at: datetime | msgspec.UnsetType | None = msgspec.UNSET,
    enabled: bool | msgspec.UnsetType = msgspec.UNSET,
) -> KeyRecord:
    values = unset_free(
        {
            "name": name,
            "models": models,
            "rpm_limit": rpm_limit,
            "tpm_limit": tpm_limit,
            "credit_limit_nano": credit_limit_nano,
            "expires_at": expires_at,
            "enabled": enabled,
        }
    )
    if "models" in values:
        values["models"] = check_model_patterns(values["models"])
    _check_limits(values)
    async with store.transaction() as conn:
        await _live(conn, key_id)
        await update(conn, t.api_keys, t.api_keys.c.id, key_id, "key", values=values)
        return await load_key(conn, key_id)


async def revoke_key(store: Store, key_id: str, now: datetime | None = None) -> KeyRecord:
    """Final: a revoked key is never accepted again. Revoking twice is a no-op."""
    k = t.api_keys
    async with store.transaction() as conn:
        await fetch(conn, k, k.c.id, key_id, "key")
        await conn.execute(
            k.update()
            .where(and_(k.c.id == key_id, k.c.revoked_at.is_(None)))
            .values(revoked_at=now or now_utc(), enabled=False)
        )
        return await load_key(conn, key_id)


async def rotate_key(store: Store, key_id: str) -> tuple[KeyRecord, str]:
    """A new secret for the same key (same id, limits and spend); the old one stops working."""
    secret = new_secret()
    values = {"digest": digest_of(secret), "hint": hint_of(secret)}
    async with store.transaction() as conn:
        await _live(conn, key_id)
        await update(conn, t.api_keys, t.api_keys.c.id, key_id, "key", values=values)
        return await load_key(conn, key_id), secret
