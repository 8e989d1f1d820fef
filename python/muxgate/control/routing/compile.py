"""Compile the store into a routing snapshot: everything a worker needs, nothing it must not
hold (no secrets in clear, no keys it may not accept). Each compile takes the next version
and stores the encoded snapshot with it, so a restarted control plane republishes as is."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from muxgate import wire
from muxgate.store import Store, accounts, catalog, keys, settings
from muxgate.store import tables as t
from muxgate.store.ledger import now_utc


def _provider(p: catalog.ProviderRecord) -> wire.Provider:
    return wire.Provider(
        id=p.id,
        base_url=p.base_url,
        protocol=p.protocol,
        credential_env=p.credential_env,
        headers=sorted(p.headers.items()),
        connect_timeout_ms=p.connect_timeout_ms,
        credential_encrypted=p.credential_encrypted,
    )


def _channel(c: catalog.ChannelRecord) -> wire.Channel:
    return wire.Channel(
        id=c.id,
        provider=c.provider_id,
        upstream_model=c.upstream_model,
        weight=c.weight,
        price=wire.Price(
            prompt=c.price_prompt_nano,
            completion=c.price_completion_nano,
            cached=c.price_cached_nano,
        ),
        timeouts=wire.Timeouts(
            first_byte_ms=c.first_byte_timeout_ms,
            idle_ms=c.idle_timeout_ms,
            total_ms=c.total_timeout_ms,
        ),
        enabled=c.enabled,
    )


async def compile_snapshot(store: Store, now: datetime | None = None) -> wire.RoutingSnapshot:
    """The whole routing state at the next version, read in one transaction."""
    now = now or now_utc()
    rv = t.routing_versions
    async with store.transaction() as conn:
        version = (
            await conn.execute(
                rv.update()
                .where(rv.c.id == 1)
                .values(version=rv.c.version + 1)
                .returning(rv.c.version)
            )
        ).scalar_one()
        config = await settings.load(conn)
        channels: dict[str, list[wire.Channel]] = {}
        for c in await catalog.list_channels(store):
            channels.setdefault(c.model_slug, []).append(_channel(c))
        snapshot = wire.RoutingSnapshot(
            version=int(version),
            providers=[_provider(p) for p in await catalog.list_providers(store)],
            models=[
                wire.Model(
                    slug=m.slug,
                    aliases=m.aliases,
                    context_length=m.context_length,
                    channels=channels.get(m.slug, []),
                )
                for m in await catalog.list_models(store)
            ],
            accounts=[
                wire.Account(id=a.id, blocked=a.effectively_blocked)
                for a in await accounts.list_accounts(store)
            ],
            keys=[
                wire.ApiKey(id=k.id, account=k.account_id, digest=k.digest, models=k.models)
                for k in await keys.list_keys(store)
                if k.usable(now)
            ],
            settings=wire.Settings(
                keepalive_ms=config.keepalive_ms, max_attempts=config.max_attempts
            ),
        )
        await conn.execute(
            rv.update().where(rv.c.id == 1).values(snapshot=snapshot.encode(), compiled_at=now)
        )
    return snapshot


async def stored_snapshot(store: Store) -> tuple[int, bytes | None]:
    """The last compiled version and its encoded snapshot (None before the first compile)."""
    rv = t.routing_versions
    async with store.read() as conn:
        row = (await conn.execute(select(rv.c.version, rv.c.snapshot).where(rv.c.id == 1))).one()
        return int(row.version), row.snapshot


async def next_key_expiry(store: Store, now: datetime | None = None) -> datetime | None:
    """When the next live key expires: the snapshot must be recompiled then to drop it."""
    now = now or now_utc()
    k = t.api_keys
    query = select(func.min(k.c.expires_at, type_=t.UtcDateTime())).where(
        k.c.enabled, k.c.revoked_at.is_(None), k.c.expires_at > now
    )
    async with store.read() as conn:
        earliest: datetime | None = (await conn.execute(query)).scalar_one()
        return earliest
