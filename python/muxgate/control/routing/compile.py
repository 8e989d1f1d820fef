"""Compile the store into a routing snapshot: everything a worker needs, nothing it must not
hold (no secrets in clear; revoked keys left out, other keys it may not accept marked so it
says why). Each compile takes the next version
and stores the encoded snapshot with it, so a restarted control plane republishes as is.

The snapshot also carries what moves with traffic: each model's recent median time to first
token (for insurance's relative `high_latency`) and each channel's live figures (for routing by
latency, throughput or quality), which is why the control plane recompiles when they move
(see `ControlPlane`)."""

from __future__ import annotations

import logging
from datetime import datetime

import msgspec
from sqlalchemy import select

from muxgate import wire
from muxgate.config import resolve_timeouts
from muxgate.store import (
    Store,
    accounts,
    catalog,
    fallbacks,
    keys,
    live_stats,
    policies,
    settings,
    usage,
)
from muxgate.store import tables as t
from muxgate.store.ledger import now_utc

log = logging.getLogger("muxgate.control")


def _provider(p: catalog.ProviderRecord) -> wire.Provider:
    return wire.Provider(
        id=p.id,
        base_url=p.base_url,
        protocol=p.protocol,
        credential_env=p.credential_env,
        headers_env=sorted(p.headers_env.items()),
        connect_timeout_ms=p.connect_timeout_ms,
        credential_encrypted=p.credential_encrypted,
    )


def _timeouts(record: catalog.ModelRecord | catalog.ChannelRecord) -> dict[str, int | None]:
    return {name: getattr(record, column) for name, column in catalog.TIMEOUT_COLUMNS.items()}


def _channel(
    c: catalog.ChannelRecord, model: catalog.ModelRecord, stats: wire.LiveStats | None
) -> wire.Channel:
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
        timeouts=resolve_timeouts(_timeouts(c), _timeouts(model)),
        enabled=c.enabled,
        stats=stats or wire.LiveStats(),
    )


def _rule(r: policies.InsuranceRuleRecord) -> wire.InsuranceRule:
    return wire.InsuranceRule(
        id=r.id,
        # The stored parameters are exactly the trigger's fields (checked by `policies`).
        trigger=msgspec.convert({"type": r.trigger, **r.params}, wire.Trigger),
        scope=wire.InsuranceScope(models=r.models, channels=r.channels, accounts=r.accounts),
        payout=wire.Payout(
            share_bp=r.payout_percent * 100,
            max_per_request=r.cap_per_request_nano,
            min_cost=r.min_cost_nano,
            max_per_account_day=r.cap_per_day_nano,
        ),
    )


# Of the limits covering a request the engine applies the highest priority's (for rpm and tpm
# separately): a key's own setting, then a policy naming its subjects, then one naming models.
KEY_PRIORITY = 30
SUBJECTS_PRIORITY = 20
MODELS_PRIORITY = 10
GLOBAL_PRIORITY = 0


def _policy_limit(p: policies.RateLimitPolicyRecord) -> wire.RateLimit:
    if p.subjects:
        priority = SUBJECTS_PRIORITY
    elif p.models:
        priority = MODELS_PRIORITY
    else:
        priority = GLOBAL_PRIORITY
    return wire.RateLimit(
        id=p.id,
        scope=p.applies_to,
        subjects=p.subjects,
        models=p.models,
        rpm=p.rpm,
        tpm=p.tpm,
        burst=p.burst,
        priority=priority,
    )


def _key_limit(k: keys.KeyRecord) -> wire.RateLimit | None:
    """The limits a key sets itself, for every model it may use."""
    if k.rpm_limit is None and k.tpm_limit is None:
        return None
    return wire.RateLimit(
        id=policies.KEY_LIMIT_PREFIX + k.id,
        scope="key",
        subjects=[k.id],
        rpm=k.rpm_limit,
        tpm=k.tpm_limit,
        priority=KEY_PRIORITY,
    )


def rate_limits(
    policy_list: list[policies.RateLimitPolicyRecord], live_keys: list[keys.KeyRecord]
) -> list[wire.RateLimit]:
    """Enabled policies and the usable keys' own limits, in id order."""
    limits = [_policy_limit(p) for p in policy_list if p.enabled]
    limits.extend(limit for k in live_keys if (limit := _key_limit(k)) is not None)
    return sorted(limits, key=lambda limit: limit.id)


def usable_fallback(name: str | None, models: list[wire.Model]) -> str | None:
    """`name` when the engine can route to it: a model of the snapshot and, for
    `model:provider`, a live channel (enabled, weighted) of it. The gateway refuses every
    request of an account whose default fallback it cannot route to, so one the store still
    names but the catalog no longer serves (its pinned channels all disabled) is left out."""
    if name is None:
        return None
    by_name = {n: m for m in models for n in (m.slug, *m.aliases)}
    found = fallbacks.split_fallback(name, {n: m.slug for n, m in by_name.items()})
    if found is None:
        return None
    slug, pin = found
    if pin is None:
        return name
    live = (c for c in by_name[slug].channels if c.enabled and c.weight > 0)
    return name if any(fallbacks.names_channel(c.id, c.provider, pin) for c in live) else None


def _key(k: keys.KeyRecord) -> wire.ApiKey:
    """Every key not revoked, so the engine can tell a disabled, expired or spent key from an
    unknown one; the expiry travels so each worker enforces it by its own clock."""
    return wire.ApiKey(
        id=k.id,
        account=k.account_id,
        digest=k.digest,
        models=k.models,
        enabled=k.enabled,
        expires_at=None if k.expires_at is None else int(k.expires_at.timestamp() * 1000),
        credit_exhausted=k.credit_limit_nano is not None and k.spent_nano >= k.credit_limit_nano,
    )


def _account(a: accounts.AccountRecord, models: list[wire.Model]) -> wire.Account:
    fallback = usable_fallback(a.default_fallback, models)
    if fallback != a.default_fallback:
        log.warning(
            "account %s: default fallback %r is not served now; left out of the snapshot",
            a.id,
            a.default_fallback,
        )
    return wire.Account(
        id=a.id,
        blocked=a.effectively_blocked,
        retain_content=a.retain_content,
        default_fallback=fallback,
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
        medians = await usage.ttft_medians(conn, now)
        stats = await live_stats.channel_stats(conn, now)
        model_records = {m.slug: m for m in await catalog.list_models(store)}
        channels: dict[str, list[wire.Channel]] = {}
        for c in await catalog.list_channels(store):
            model = model_records[c.model_slug]
            channels.setdefault(c.model_slug, []).append(_channel(c, model, stats.get(c.id)))
        models = [
            wire.Model(
                slug=m.slug,
                aliases=m.aliases,
                context_length=m.context_length,
                channels=channels.get(m.slug, []),
                ttft_p50_ms=medians.get(m.slug),
                max_attempts=m.max_attempts,
            )
            for m in model_records.values()
        ]
        key_records = [k for k in await keys.list_keys(store) if k.revoked_at is None]
        live_keys = [k for k in key_records if k.usable(now)]
        snapshot = wire.RoutingSnapshot(
            version=int(version),
            providers=[_provider(p) for p in await catalog.list_providers(store)],
            models=models,
            accounts=[_account(a, models) for a in await accounts.list_accounts(store)],
            keys=[_key(k) for k in key_records],
            settings=wire.Settings(
                keepalive_ms=config.keepalive_ms, max_attempts=config.max_attempts
            ),
            # In id order: the engine pays rules in order until the request's cost is used up.
            insurance=[_rule(r) for r in await policies.list_insurance_rules(store) if r.enabled],
            limits=rate_limits(await policies.list_rate_limit_policies(store), live_keys),
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


def live_figures(snapshot: wire.RoutingSnapshot) -> dict[str, float]:
    """The figures of a snapshot that move with traffic, flat: `model ttft` per model,
    `<field>` per channel, for `medians_moved`."""
    figures = {f"{m.slug} ttft": m.ttft_p50_ms for m in snapshot.models}
    for m in snapshot.models:
        for c in m.channels:
            for name in live_stats.FIELDS:
                figures[f"{m.slug} {c.id} {name}"] = getattr(c.stats, name)
    return {name: value for name, value in figures.items() if value is not None}


async def recent_medians(store: Store, now: datetime | None = None) -> dict[str, float]:
    """The live figures (see `live_figures`) as the next compile would publish them."""
    now = now or now_utc()
    async with store.read() as conn:
        medians = await usage.ttft_medians(conn, now)
        stats = await live_stats.channel_stats(conn, now)
    models = {m.slug for m in await catalog.list_models(store)}
    figures = {f"{slug} ttft": value for slug, value in medians.items() if slug in models}
    for c in await catalog.list_channels(store):
        channel = stats.get(c.id)
        for name in live_stats.FIELDS if channel else ():
            value = getattr(channel, name)
            if value is not None:
                figures[f"{c.model_slug} {c.id} {name}"] = value
    return figures


def medians_moved(
    published: dict[str, float], current: dict[str, float], tolerance: float = 0.1
) -> bool:
    """Whether the live figures differ enough from the published ones to be worth a new
    snapshot: one appeared or went away, or one moved by more than `tolerance` of itself (of
    1 for figures below 1, such as error rates, which move by absolute points)."""
    if published.keys() != current.keys():
        return True
    return any(
        abs(current[name] - old) > tolerance * max(abs(old), 1.0) for name, old in published.items()
    )
