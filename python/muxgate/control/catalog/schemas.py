"""Providers, models and channels as the admin API shows them. Prices are USD per million
tokens as decimal strings; a provider's credential is write-only, and its extra headers name
the environment variables that hold their values, never the values."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from muxgate.control.fields import Id, Slug
from muxgate.store import catalog
from muxgate.store.money import nano_to_usd

Url = Annotated[str, Meta(max_length=2000, pattern=r"^https?://[^\s\x00]+$")]
EnvName = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Secret = Annotated[str, Meta(min_length=1, max_length=10_000, pattern=r"^[^\x00]+$")]
HeaderName = Annotated[
    str, Meta(min_length=1, max_length=200, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
]
ConnectTimeout = Annotated[int, Meta(ge=1, le=600_000)]
Capability = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
ContextLength = Annotated[int, Meta(ge=1, le=2**32 - 1)]
MaxAttempts = Annotated[int, Meta(ge=1, le=20)]
UpstreamModel = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Weight = Annotated[int, Meta(ge=0, le=2**32 - 1)]
TimeoutMs = Annotated[int, Meta(ge=1, le=86_400_000)]
PerMillion = Annotated[
    str,
    Meta(pattern=r"^[0-9]{1,9}(\.[0-9]{1,9})?$", description="USD per million tokens"),
]
Protocol = Literal["openai", "anthropic", "gemini"]


class Provider(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    base_url: str
    protocol: str
    credential_env: str | None
    """Environment variable the workers read the credential from."""
    credential_stored: bool
    """A credential is stored encrypted (it is never returned)."""
    headers_env: dict[str, str]
    """Extra headers sent upstream: name -> the environment variable holding the value."""
    connect_timeout_ms: int
    created_at: datetime

    @classmethod
    def of(cls, p: catalog.ProviderRecord) -> Provider:
        return cls(
            id=p.id,
            base_url=p.base_url,
            protocol=p.protocol,
            credential_env=p.credential_env,
            credential_stored=p.credential_encrypted is not None,
            headers_env=p.headers_env,
            connect_timeout_ms=p.connect_timeout_ms,
            created_at=p.created_at,
        )


class ProviderCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: Id
    base_url: Url
    protocol: Protocol = "openai"
    credential_env: EnvName | None = None
    credential: Secret | None = None
    """Stored encrypted (needs `MUXGATE_SECRET_KEY`); give this or `credential_env`."""
    headers_env: dict[HeaderName, EnvName] = {}
    """Extra headers: name -> the environment variable the workers read the value from."""
    connect_timeout_ms: ConnectTimeout = 5_000


class ProviderUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    base_url: Url | UnsetType = UNSET
    protocol: Protocol | UnsetType = UNSET
    credential_env: EnvName | UnsetType | None = UNSET
    credential: Secret | UnsetType | None = UNSET
    """A new secret, or null to forget the stored one."""
    headers_env: dict[HeaderName, EnvName] | UnsetType = UNSET
    connect_timeout_ms: ConnectTimeout | UnsetType = UNSET


class Timeouts(msgspec.Struct, frozen=True, kw_only=True):
    """Milliseconds. null: a channel's is its model's, a model's the built-in default (60 000,
    120 000, 600 000)."""

    first_byte_ms: TimeoutMs | None = None
    idle_ms: TimeoutMs | None = None
    total_ms: TimeoutMs | None = None

    @classmethod
    def of(cls, r: catalog.ModelRecord | catalog.ChannelRecord) -> Timeouts:
        return cls(
            first_byte_ms=r.first_byte_timeout_ms,
            idle_ms=r.idle_timeout_ms,
            total_ms=r.total_timeout_ms,
        )


class Model(msgspec.Struct, frozen=True, kw_only=True):
    slug: str
    aliases: list[str]
    context_length: int | None
    capabilities: list[str]
    max_attempts: int | None
    """Attempts across the model's channels, the first included; null: the settings'
    `max_attempts`."""
    timeouts: Timeouts
    """The default of its channels that set none."""
    created_at: datetime

    @classmethod
    def of(cls, m: catalog.ModelRecord) -> Model:
        return cls(
            slug=m.slug,
            aliases=m.aliases,
            context_length=m.context_length,
            capabilities=m.capabilities,
            max_attempts=m.max_attempts,
            timeouts=Timeouts.of(m),
            created_at=m.created_at,
        )


class ModelCreate(msgspec.Struct, frozen=True, kw_only=True):
    slug: Slug
    aliases: list[Slug] = []
    context_length: ContextLength | None = None
    capabilities: list[Capability] = []
    max_attempts: MaxAttempts | None = None
    timeouts: Timeouts = Timeouts()


class ModelUpdate(msgspec.Struct, frozen=True, kw_only=True):
    aliases: list[Slug] | UnsetType = UNSET
    """Replaces all aliases; one an account's default fallback uses cannot go (409)."""
    context_length: ContextLength | UnsetType | None = UNSET
    capabilities: list[Capability] | UnsetType = UNSET
    max_attempts: MaxAttempts | UnsetType | None = UNSET
    """null: the settings' `max_attempts` again."""
    timeouts: Timeouts | UnsetType = UNSET
    """Replaces all three timeouts."""


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """USD per million tokens; `cached` defaults to the prompt price."""

    prompt: PerMillion = "0"
    completion: PerMillion = "0"
    cached: PerMillion | None = None


class Channel(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    model: str
    provider: str
    upstream_model: str
    weight: int
    price: Price
    timeouts: Timeouts
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, c: catalog.ChannelRecord) -> Channel:
        return cls(
            id=c.id,
            model=c.model_slug,
            provider=c.provider_id,
            upstream_model=c.upstream_model,
            weight=c.weight,
            price=Price(
                prompt=nano_to_usd(c.price_prompt_nano),
                completion=nano_to_usd(c.price_completion_nano),
                cached=nano_to_usd(c.price_cached_nano),
            ),
            timeouts=Timeouts.of(c),
            enabled=c.enabled,
            created_at=c.created_at,
        )


class ChannelCreate(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    model: Slug
    provider: Id
    upstream_model: UpstreamModel
    weight: Weight = 1
    price: Price = Price()
    timeouts: Timeouts = Timeouts()
    enabled: bool = True


class ChannelUpdate(msgspec.Struct, frozen=True, kw_only=True):
    model: Slug | UnsetType = UNSET
    provider: Id | UnsetType = UNSET
    upstream_model: UpstreamModel | UnsetType = UNSET
    weight: Weight | UnsetType = UNSET
    price: Price | UnsetType = UNSET
    """Replaces the whole price."""
    timeouts: Timeouts | UnsetType = UNSET
    """Replaces all three timeouts."""
    enabled: bool | UnsetType = UNSET
