"""The TOML configuration file and its compilation into a routing snapshot.

Prices are written the way providers publish them (USD per million tokens, as strings or
numbers) and become integer nano-USD here, through Decimal, so no float ever touches money.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import msgspec

from muxgate import wire
from muxgate.provider_secrets import base_url_problem, headers_env_problem

NANO_PER_USD = Decimal(1_000_000_000)
MAX_ATTEMPTS = (1, 20)
TIMEOUT_SECONDS = (0.001, 86_400)


class ConfigError(ValueError):
    """A configuration file that cannot be used, with the offending field path."""


class GatewaySection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 10 * 1024 * 1024
    keepalive_seconds: float = 10.0
    max_attempts: int = 3
    # HTTPS for `muxgate serve`: PEM certificate (chain) and key paths; --tls-cert/--tls-key win.
    tls_cert: str | None = None
    tls_key: str | None = None


class ProviderSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    base_url: str
    protocol: str = "openai"
    credential_env: str | None = None
    headers_env: dict[str, str] = {}
    """Extra headers: name -> the environment variable holding the value."""
    connect_timeout_seconds: float = 5.0


class PriceSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """USD per million tokens."""

    prompt: str | float | int = 0
    completion: str | float | int = 0
    cached: str | float | int | None = None


class TimeoutSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A channel's timeout left out is its model's; a model's left out is the built-in default
    (60, 120 and 600 seconds)."""

    first_byte_seconds: float | None = None
    idle_seconds: float | None = None
    total_seconds: float | None = None


class ChannelSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    provider: str
    upstream_model: str
    weight: int = 1
    price: PriceSection = PriceSection()
    timeouts: TimeoutSection = TimeoutSection()
    enabled: bool = True


class ModelSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    slug: str
    aliases: list[str] = []
    context_length: int | None = None
    capabilities: list[str] = []
    max_attempts: int | None = None
    """Attempts across this model's channels, the first included (`gateway.max_attempts`
    when absent)."""
    timeouts: TimeoutSection = TimeoutSection()
    """The default of its channels that set none."""
    channels: list[ChannelSection] = []


class AccountSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    name: str = ""
    blocked: bool = False
    default_fallback: str | None = None
    """The model (`model` or `model:provider`) tried when every channel of a requested model
    failed and the request names no fallback of its own; checked against the store on import.
    Left out, the stored one is kept (the account may set it itself); "" clears it."""


class KeySection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An API key, given as its secret, an environment variable holding it, or its digest."""

    id: str
    account: str
    secret: str | None = None
    secret_env: str | None = None
    digest: str | None = None
    name: str = ""
    models: list[str] = []
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    credit_limit: str | None = None
    """USD, as a decimal string."""
    expires_at: datetime | None = None
    enabled: bool = True


class InsuranceRuleSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An insurance rule, field for field as the admin API takes it. Money in USD, as decimal
    strings."""

    id: str
    trigger: str
    description: str = ""
    params: dict[str, int | float | str] | None = None
    """The trigger's parameters (`ttft_ms`, `p50_multiple`, `min_tokens_per_second`, ...,
    `sample_rate`, `judge_model`); they replace the stored ones, defaults filling the rest.
    Left out, a stored rule keeps its parameters."""
    threshold: float | None = None
    """Older files' single parameter: `ttft_ms` of `high_latency`, `min_tokens_per_second` of
    `low_throughput`."""
    models: list[str] = []
    channels: list[str] = []
    accounts: list[str] = []
    payout_percent: int = 100
    cap_per_request: str | None = None
    cap_per_day: str | None = None
    min_cost: str | None = None
    """Requests costing less are not covered (default: every request that costs anything)."""
    enabled: bool = True


# What the legacy `threshold` of a rule stands for.
THRESHOLD_PARAMS = {"high_latency": "ttft_ms", "low_throughput": "min_tokens_per_second"}


def rule_params(rule: InsuranceRuleSection) -> dict[str, int | float | str]:
    """The parameters a rule section gives, its legacy `threshold` included."""
    params = dict(rule.params or {})
    name = THRESHOLD_PARAMS.get(rule.trigger)
    if rule.threshold is not None and name is not None:
        params[name] = round(rule.threshold) if name == "ttft_ms" else rule.threshold
    return params


class RateLimitPolicySection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A rate-limit policy, field for field as the admin API takes it."""

    id: str
    applies_to: str
    description: str = ""
    subjects: list[str] = []
    """Key ids (or account ids, per `applies_to`) it limits, in the file or the store; empty:
    every key (account)."""
    models: list[str] = []
    rpm: int | None = None
    tpm: int | None = None
    burst: int | None = None
    enabled: bool = True


class ConfigFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    gateway: GatewaySection = GatewaySection()
    providers: list[ProviderSection] = []
    models: list[ModelSection] = []
    accounts: list[AccountSection] = []
    keys: list[KeySection] = []
    insurance_rules: list[InsuranceRuleSection] = []
    rate_limit_policies: list[RateLimitPolicySection] = []


def load(path: str | Path) -> ConfigFile:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        config = msgspec.convert(raw, ConfigFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    validate(config)
    return config


def key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def usd_per_million_to_nano(value: str | float | int, where: str) -> int:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"{where}: {value!r} is not a price") from exc
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"{where}: a price must be a non-negative number")
    nano = amount * NANO_PER_USD
    if nano != nano.to_integral_value():
        raise ConfigError(f"{where}: {value!r} has more precision than 1e-9 USD per million tokens")
    return int(nano)


def _unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ConfigError(f"{what}: duplicate id {i!r}")
        seen.add(i)


def validate(config: ConfigFile) -> None:
    """Cross-references msgspec cannot check: ids unique and every reference resolvable."""
    _unique([p.id for p in config.providers], "providers")
    _unique([a.id for a in config.accounts], "accounts")
    _unique([k.id for k in config.keys], "keys")
    names: list[str] = []
    for m in config.models:
        names.append(m.slug)
        names.extend(m.aliases)
    _unique(names, "models (slugs and aliases)")
    low, high = MAX_ATTEMPTS
    for m in config.models:
        if m.max_attempts is not None and not low <= m.max_attempts <= high:
            raise ConfigError(f"models.{m.slug}.max_attempts: must be between {low} and {high}")
        _check_timeouts(m.timeouts, f"models.{m.slug}.timeouts")
    providers = {p.id for p in config.providers}
    for p in config.providers:
        problem = base_url_problem(p.base_url)
        if problem is not None:
            raise ConfigError(f"providers.{p.id}.base_url: {problem}")
        bad_header = headers_env_problem(p.headers_env)
        if bad_header is not None:
            header, why = bad_header
            raise ConfigError(f"providers.{p.id}.headers_env.{header}: {why}")
        if p.protocol not in wire.PROTOCOLS:
            supported = ", ".join(repr(name) for name in wire.PROTOCOLS)
            raise ConfigError(f"providers.{p.id}.protocol: must be one of {supported}")
    # Channel ids name a provider endpoint everywhere (response header, usage, admin API), so
    # they are unique across models, not only within one.
    _unique([c.id for m in config.models for c in m.channels], "models.channels")
    for m in config.models:
        for c in m.channels:
            where = f"models.{m.slug}.channels.{c.id}"
            if c.provider not in providers:
                raise ConfigError(f"{where}.provider: unknown provider {c.provider!r}")
            if c.weight < 0:
                raise ConfigError(f"{where}.weight: must be >= 0")
            _check_timeouts(c.timeouts, f"{where}.timeouts")
    _unique([r.id for r in config.insurance_rules], "insurance_rules")
    _unique([p.id for p in config.rate_limit_policies], "rate_limit_policies")
    for r in config.insurance_rules:
        _check_threshold(r)
    accounts = {a.id for a in config.accounts}
    for k in config.keys:
        if k.account not in accounts:
            raise ConfigError(f"keys.{k.id}.account: unknown account {k.account!r}")
        given = [x for x in (k.secret, k.secret_env, k.digest) if x is not None]
        if len(given) != 1:
            raise ConfigError(f"keys.{k.id}: give exactly one of secret, secret_env, digest")


def _check_timeouts(section: TimeoutSection, where: str) -> None:
    low, high = TIMEOUT_SECONDS
    for name in section.__struct_fields__:
        value = getattr(section, name)
        if value is not None and not low <= value <= high:
            raise ConfigError(f"{where}.{name}: must be between {low} and {high}")


def timeouts_ms(section: TimeoutSection) -> dict[str, int | None]:
    """The section in milliseconds, by `wire.Timeouts` field (None where it sets none)."""
    seconds = {
        "first_byte_ms": section.first_byte_seconds,
        "idle_ms": section.idle_seconds,
        "total_ms": section.total_seconds,
    }
    return {name: None if s is None else round(s * 1000) for name, s in seconds.items()}


def resolve_timeouts(*layers: Mapping[str, int | None]) -> wire.Timeouts:
    """Each timeout from the first layer that sets it (a channel's, then its model's), the
    built-in default where none does. The snapshot carries the result, so the engine needs no
    notion of a model's defaults."""
    given: dict[str, int] = {}
    for layer in reversed(layers):
        given.update((name, ms) for name, ms in layer.items() if ms is not None)
    return wire.Timeouts(**given)


def _check_threshold(rule: InsuranceRuleSection) -> None:
    if rule.threshold is None:
        return
    where = f"insurance_rules.{rule.id}.threshold"
    name = THRESHOLD_PARAMS.get(rule.trigger)
    if name is None:
        raise ConfigError(f"{where}: {rule.trigger} takes no threshold; use params")
    given = (rule.params or {}).get(name)
    if given is not None and given != rule_params(rule)[name]:
        raise ConfigError(f"{where}: disagrees with params.{name}; give only params.{name}")


def _key_to_wire(k: KeySection) -> wire.ApiKey:
    if k.digest is not None:
        digest = k.digest.lower()
        if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
            raise ConfigError(f"keys.{k.id}.digest: must be 64 hex digits (SHA-256)")
    elif k.secret_env is not None:
        secret = os.environ.get(k.secret_env)
        if not secret:
            raise ConfigError(
                f"keys.{k.id}.secret_env: environment variable {k.secret_env} is not set"
            )
        digest = key_digest(secret)
    else:
        assert k.secret is not None
        digest = key_digest(k.secret)
    expires_at = None if k.expires_at is None else int(k.expires_at.timestamp() * 1000)
    return wire.ApiKey(
        id=k.id,
        account=k.account,
        digest=digest,
        models=k.models,
        enabled=k.enabled,
        expires_at=expires_at,
    )


def _channel_to_wire(model: ModelSection, c: ChannelSection) -> wire.Channel:
    where = f"models.{model.slug}.channels.{c.id}.price"
    prompt = usd_per_million_to_nano(c.price.prompt, f"{where}.prompt")
    cached = (
        prompt
        if c.price.cached is None
        else usd_per_million_to_nano(c.price.cached, f"{where}.cached")
    )
    return wire.Channel(
        id=c.id,
        provider=c.provider,
        upstream_model=c.upstream_model,
        weight=c.weight,
        price=wire.Price(
            prompt=prompt,
            completion=usd_per_million_to_nano(c.price.completion, f"{where}.completion"),
            cached=cached,
        ),
        timeouts=resolve_timeouts(timeouts_ms(c.timeouts), timeouts_ms(model.timeouts)),
        enabled=c.enabled,
    )


def compile_snapshot(config: ConfigFile, version: int) -> wire.RoutingSnapshot:
    return wire.RoutingSnapshot(
        version=version,
        providers=[
            wire.Provider(
                id=p.id,
                base_url=p.base_url,
                protocol=p.protocol,
                credential_env=p.credential_env,
                headers_env=sorted(p.headers_env.items()),
                connect_timeout_ms=round(p.connect_timeout_seconds * 1000),
            )
            for p in config.providers
        ],
        models=[
            wire.Model(
                slug=m.slug,
                aliases=m.aliases,
                context_length=m.context_length,
                channels=[_channel_to_wire(m, c) for c in m.channels],
                max_attempts=m.max_attempts,
            )
            for m in config.models
        ],
        accounts=[
            wire.Account(id=a.id, blocked=a.blocked, default_fallback=a.default_fallback or None)
            for a in config.accounts
        ],
        keys=[_key_to_wire(k) for k in config.keys],
        settings=wire.Settings(
            keepalive_ms=max(1, round(config.gateway.keepalive_seconds * 1000)),
            max_attempts=max(1, config.gateway.max_attempts),
        ),
    )
