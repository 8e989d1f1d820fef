"""The TOML configuration file as an import/export format of the store's data.

Import merges: every entity in the file is created or updated by id, nothing absent from the
file is deleted, and the whole import is one transaction. Access an operator restricted is
never given back by a file: an existing key is only ever narrowed (see `_narrowed`), a blocked
account stays blocked, and a revoked key is skipped. Export writes what import reads; secrets
never appear (keys as digests, encrypted provider credentials left out)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import msgspec

from muxgate import config as cfg
from muxgate.store import accounts, catalog, keys, policies, settings
from muxgate.store.errors import Invalid, NotFound
from muxgate.store.ledger import now_utc
from muxgate.store.money import nano_to_usd, usd_to_nano
from muxgate.store.store import Store
from muxgate.store.toml_text import dumps


class _Entity(NamedTuple):
    """How the store reads, creates and updates one kind of entity. `section` is where the file
    lists it, for kinds whose store errors should name the file's field."""

    get: Callable[[Store, str], Awaitable[object]]
    create: Callable[..., Awaitable[object]]
    update: Callable[..., Awaitable[object]]
    section: str | None = None


_PROVIDER = _Entity(catalog.get_provider, catalog.create_provider, catalog.update_provider)
_MODEL = _Entity(catalog.get_model, catalog.create_model, catalog.update_model)
_CHANNEL = _Entity(catalog.get_channel, catalog.create_channel, catalog.update_channel)
_ACCOUNT = _Entity(
    accounts.get_account, accounts.create_account, accounts.update_account, section="accounts"
)
_RATE_LIMIT_POLICY = _Entity(
    policies.get_rate_limit_policy,
    policies.create_rate_limit_policy,
    policies.update_rate_limit_policy,
    section="rate_limit_policies",
)


async def _upsert(store: Store, entity: _Entity, ident: str, **fields: Any) -> None:
    """Create `ident` with the file's fields, or update it if the store has it."""
    try:
        await entity.get(store, ident)
        write = entity.update
    except NotFound:
        write = entity.create
    try:
        await write(store, ident, **fields)
    except Invalid as exc:
        if entity.section is None:
            raise
        where = f"{entity.section}.{ident}.{exc.field}"
        raise Invalid(f"{where}: {exc.message}", exc.field) from exc


def _timeout_columns(section: cfg.TimeoutSection) -> dict[str, int | None]:
    """The section's own timeouts, unresolved: a model's default must stay a default."""
    ms = cfg.timeouts_ms(section)
    return {column: ms[name] for name, column in catalog.TIMEOUT_COLUMNS.items()}


def _timeout_seconds(
    record: catalog.ModelRecord | catalog.ChannelRecord,
) -> dict[str, float] | None:
    seconds = {
        "first_byte_seconds": record.first_byte_timeout_ms,
        "idle_seconds": record.idle_timeout_ms,
        "total_seconds": record.total_timeout_ms,
    }
    given = {name: ms / 1000 for name, ms in seconds.items() if ms is not None}
    return given or None


def _hint(key: cfg.KeySection, digest: str) -> str:
    secret = key.secret
    return keys.hint_of(secret) if secret else "digest:" + digest[:8]


def _pattern_covers(wide: str, narrow: str) -> bool:
    """Whether pattern `wide` admits every model `narrow` does (only a trailing `*` is a
    wildcard, so a prefix compare decides it)."""
    return narrow.startswith(wide[:-1]) if wide.endswith("*") else wide == narrow


def models_within(narrow: list[str], wide: list[str]) -> bool:
    """Whether the model list `narrow` admits no model `wide` does not (empty: every model)."""
    if not wide:
        return True
    return bool(narrow) and all(any(_pattern_covers(w, n) for w in wide) for n in narrow)


def _at_most(value: Any, stored: Any) -> bool:
    """A limit or an expiry no looser than the stored one (None: none, the loosest)."""
    return stored is None or (value is not None and value <= stored)


def _narrowed(current: keys.KeyRecord, fields: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The file's fields for a key the store has, each taken only where it restricts the key
    as much as the stored value or more: the file may disable it, lower its limits, bring its
    expiry forward and narrow its models, never the reverse (an operator may have restricted
    it through the admin API, which a restart with the file must not undo). The fields kept,
    and a warning for each loosening left out."""
    kept: dict[str, Any] = {}
    if fields["enabled"] and not current.enabled:
        kept["enabled"] = False
    if not models_within(fields["models"], current.models):
        kept["models"] = current.models
    for name in ("rpm_limit", "tpm_limit", "credit_limit_nano", "expires_at"):
        if not _at_most(fields[name], getattr(current, name)):
            kept[name] = getattr(current, name)
    warnings = [
        f"keys.{current.id}.{name.removesuffix('_nano')}: the file would loosen the key "
        f"(stored {_shown(name, stored)}, file {_shown(name, fields[name])}); the stored value "
        "stays (loosen a key through the admin API)"
        for name, stored in kept.items()
    ]
    return {**fields, **kept}, warnings


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "none"
    if name == "credit_limit_nano":
        return "$" + nano_to_usd(value)
    if name == "expires_at":
        return str(value.isoformat())
    return str(value)


async def _import_keys(store: Store, config: cfg.ConfigFile, digests: dict[str, str]) -> list[str]:
    warnings: list[str] = []
    for k in config.keys:
        where = f"keys.{k.id}"
        credit = (
            None if k.credit_limit is None else usd_to_nano(k.credit_limit, f"{where}.credit_limit")
        )
        fields: dict[str, Any] = {
            "name": k.name,
            "models": k.models,
            "rpm_limit": k.rpm_limit,
            "tpm_limit": k.tpm_limit,
            "credit_limit_nano": credit,
            "expires_at": k.expires_at,
            "enabled": k.enabled,
        }
        digest, hint = digests[k.id], _hint(k, digests[k.id])
        try:
            current = await keys.get_key(store, k.id)
        except NotFound:
            async with store.transaction() as conn:
                await keys.insert_key(
                    conn,
                    key_id=k.id,
                    account_id=k.account,
                    digest=digest,
                    hint=hint,
                    now=now_utc(),
                    **fields,
                )
            continue
        if current.revoked_at is not None:
            warnings.append(f"{where}: the key is revoked; skipped (a revoked key stays revoked)")
            continue
        if current.account_id != k.account:
            raise Invalid(f"{where}.account: a key cannot move to another account", "account")
        fields, loosened = _narrowed(current, fields)
        warnings.extend(loosened)
        await keys.update_key(store, k.id, **fields)
        if current.digest != digest:
            # The store cannot tell a secret the file changed from one the operator rotated
            # (perhaps because it leaked): bringing the file's back could revive that one.
            warnings.append(
                f"{where}.secret: the store holds another secret for this key; kept (rotate "
                "a key through the admin API)"
            )
    return warnings


async def import_config(store: Store, config: cfg.ConfigFile) -> list[str]:
    """Create or update everything in `config`, atomically; the warnings about what of the file
    was not applied (see the module's doc). Raises `config.ConfigError` for a file that does
    not validate and a `StoreError` for one that clashes with the store."""
    warnings: list[str] = []
    cfg.validate(config)
    compiled = cfg.compile_snapshot(config, version=0)  # prices, timeouts and key digests
    digests = {k.id: k.digest for k in compiled.keys}
    async with store.transaction():
        await settings.update_settings(
            store,
            keepalive_ms=compiled.settings.keepalive_ms,
            max_attempts=compiled.settings.max_attempts,
        )
        for p, wp in zip(config.providers, compiled.providers, strict=True):
            fields: dict[str, Any] = {
                "base_url": p.base_url,
                "protocol": p.protocol,
                "headers_env": p.headers_env,
                "connect_timeout_ms": wp.connect_timeout_ms,
            }
            # A provider whose credential is stored encrypted keeps it unless the file names
            # an environment variable instead.
            if p.credential_env is not None:
                fields["credential_env"] = p.credential_env
            await _upsert(store, _PROVIDER, p.id, **fields)
        for m, wm in zip(config.models, compiled.models, strict=True):
            await _upsert(
                store,
                _MODEL,
                m.slug,
                aliases=m.aliases,
                context_length=m.context_length,
                capabilities=m.capabilities,
                max_attempts=m.max_attempts,
                **_timeout_columns(m.timeouts),
            )
            for section, c in zip(m.channels, wm.channels, strict=True):
                await _upsert(
                    store,
                    _CHANNEL,
                    c.id,
                    model_slug=m.slug,
                    provider_id=c.provider,
                    upstream_model=c.upstream_model,
                    weight=c.weight,
                    price_prompt_nano=c.price.prompt,
                    price_completion_nano=c.price.completion,
                    price_cached_nano=c.price.cached,
                    enabled=c.enabled,
                    **_timeout_columns(section.timeouts),
                )
        for a in config.accounts:
            # The account may set its default fallback itself (management API): a file that
            # leaves it out keeps the stored one, and "" clears it.
            fallback: dict[str, Any] = {}
            if a.default_fallback is not None:
                fallback["default_fallback"] = a.default_fallback or None
            blocked = a.blocked or await _blocked(store, a.id)
            if blocked and not a.blocked:
                warnings.append(
                    f"accounts.{a.id}.blocked: the account is blocked in the store and stays "
                    "blocked (unblock it through the admin API)"
                )
            await _upsert(store, _ACCOUNT, a.id, name=a.name, blocked=blocked, **fallback)
        warnings.extend(await _import_keys(store, config, digests))
        for r in config.insurance_rules:
            await _import_rule(store, r)
        for pol in config.rate_limit_policies:
            await _upsert(
                store,
                _RATE_LIMIT_POLICY,
                pol.id,
                description=pol.description,
                applies_to=pol.applies_to,
                subjects=pol.subjects,
                models=pol.models,
                rpm=pol.rpm,
                tpm=pol.tpm,
                burst=pol.burst,
                enabled=pol.enabled,
            )
    return warnings


async def _blocked(store: Store, account_id: str) -> bool:
    """Whether an operator blocked the account (False for a new one)."""
    try:
        return (await accounts.get_account(store, account_id)).blocked
    except NotFound:
        return False


async def _import_rule(store: Store, rule: cfg.InsuranceRuleSection) -> None:
    where = f"insurance_rules.{rule.id}"
    params: dict[str, Any] = cfg.rule_params(rule)
    fields: dict[str, Any] = {
        "description": rule.description,
        "trigger": rule.trigger,
        "models": rule.models,
        "channels": rule.channels,
        "accounts": rule.accounts,
        "payout_percent": rule.payout_percent,
        "cap_per_request_nano": _opt_usd(rule.cap_per_request, f"{where}.cap_per_request"),
        "cap_per_day_nano": _opt_usd(rule.cap_per_day, f"{where}.cap_per_day"),
        "min_cost_nano": _opt_usd(rule.min_cost, f"{where}.min_cost") or 0,
        "enabled": rule.enabled,
    }
    try:
        current = await policies.get_insurance_rule(store, rule.id)
    except NotFound:
        await policies.create_insurance_rule(store, rule.id, params=params, **fields)
        return
    if rule.params is not None:
        # The file's parameters are the whole set: a stored one it leaves out goes back to
        # its default (an update otherwise merges parameters over the stored ones).
        params = {**dict.fromkeys(current.params), **params}
    await policies.update_insurance_rule(store, rule.id, params=params, **fields)


def _opt_usd(value: str | None, field: str) -> int | None:
    return None if value is None else usd_to_nano(value, field)


def _opt_nano(value: int | None) -> str | None:
    return None if value is None else nano_to_usd(value)


async def export_config(store: Store) -> str:
    """The store's catalog, accounts, keys and policies as configuration TOML."""
    async with store.read():
        conf = await settings.get_settings(store)
        providers = await catalog.list_providers(store)
        models = await catalog.list_models(store)
        channels = await catalog.list_channels(store)
        account_list = await accounts.list_accounts(store)
        key_list = await keys.list_keys(store)
        rules = await policies.list_insurance_rules(store)
        limits = await policies.list_rate_limit_policies(store)
    notes = ["muxgate configuration exported from the store.", ""]
    for p in providers:
        if p.credential_encrypted is not None:
            notes.append(f"provider {p.id!r}: its encrypted credential stays in the store.")
    revoked = [k.id for k in key_list if k.revoked_at is not None]
    if revoked:
        notes.append(f"revoked keys left out: {', '.join(revoked)}")
    exported_limits = []
    for pol in limits:
        subjects = pol.subjects
        if pol.applies_to == "key":
            subjects = [s for s in subjects if s not in revoked]
        if pol.subjects and not subjects:
            # Without subjects it would limit every key.
            notes.append(f"rate-limit policy {pol.id!r} left out: it names only revoked keys")
            continue
        exported_limits.append(msgspec.structs.replace(pol, subjects=subjects))
    by_model: dict[str, list[dict[str, Any]]] = {}
    for c in channels:
        by_model.setdefault(c.model_slug, []).append(
            {
                "id": c.id,
                "provider": c.provider_id,
                "upstream_model": c.upstream_model,
                "weight": c.weight,
                "enabled": c.enabled,
                "price": {
                    "prompt": nano_to_usd(c.price_prompt_nano),
                    "completion": nano_to_usd(c.price_completion_nano),
                    "cached": nano_to_usd(c.price_cached_nano),
                },
                "timeouts": _timeout_seconds(c),
            }
        )
    document: dict[str, Any] = {
        "gateway": {
            "keepalive_seconds": conf.keepalive_ms / 1000,
            "max_attempts": conf.max_attempts,
        },
        "providers": [
            {
                "id": p.id,
                "base_url": p.base_url,
                "protocol": p.protocol,
                "credential_env": p.credential_env,
                "headers_env": p.headers_env,
                "connect_timeout_seconds": p.connect_timeout_ms / 1000,
            }
            for p in providers
        ],
        "models": [
            {
                "slug": m.slug,
                "aliases": m.aliases,
                "context_length": m.context_length,
                "capabilities": m.capabilities,
                "max_attempts": m.max_attempts,
                "timeouts": _timeout_seconds(m),
                "channels": by_model.get(m.slug) or None,
            }
            for m in models
        ],
        "accounts": [
            {
                "id": a.id,
                "name": a.name,
                "blocked": a.blocked,
                "default_fallback": a.default_fallback,
            }
            for a in account_list
        ],
        "keys": [
            {
                "id": k.id,
                "account": k.account_id,
                "digest": k.digest,
                "name": k.name,
                "models": k.models,
                "rpm_limit": k.rpm_limit,
                "tpm_limit": k.tpm_limit,
                "credit_limit": _opt_nano(k.credit_limit_nano),
                "expires_at": k.expires_at,
                "enabled": k.enabled,
            }
            for k in key_list
            if k.revoked_at is None
        ],
        "insurance_rules": [
            {
                "id": r.id,
                "trigger": r.trigger,
                "description": r.description,
                "params": r.params or None,
                "models": r.models,
                "channels": r.channels,
                "accounts": r.accounts,
                "payout_percent": r.payout_percent,
                "cap_per_request": _opt_nano(r.cap_per_request_nano),
                "cap_per_day": _opt_nano(r.cap_per_day_nano),
                "min_cost": _opt_nano(r.min_cost_nano or None),
                "enabled": r.enabled,
            }
            for r in rules
        ],
        "rate_limit_policies": [
            {
                "id": pol.id,
                "applies_to": pol.applies_to,
                "description": pol.description,
                "subjects": pol.subjects,
                "models": pol.models,
                "rpm": pol.rpm,
                "tpm": pol.tpm,
                "burst": pol.burst,
                "enabled": pol.enabled,
            }
            for pol in exported_limits
        ],
    }
    return dumps(document, notes)
