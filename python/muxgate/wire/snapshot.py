"""The routing snapshot: everything a worker needs to route, compiled by the control plane.

Field for field the mirror of `rust/snapshot.rs`; encoded as msgpack and handed to the engine.
Money is integer nano-USD (1e-9 USD), never a float.
"""

from __future__ import annotations

import msgspec

PROTOCOLS = ("openai", "anthropic", "gemini")
"""Wire protocols a provider (a channel) may speak; the engine translates to and from each."""


class Provider(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    base_url: str
    protocol: str = "openai"
    # The worker reads the secret from this environment variable itself, so it never travels.
    credential_env: str | None = None
    headers: list[tuple[str, str]] = []
    connect_timeout_ms: int = 5_000
    # A credential stored encrypted (Fernet, key `MUXGATE_SECRET_KEY`): it travels still
    # encrypted and the worker decrypts it. The engine ignores this field.
    credential_encrypted: str | None = None


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """Nano-USD per million tokens."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0


class Timeouts(msgspec.Struct, frozen=True, kw_only=True):
    first_byte_ms: int = 60_000
    idle_ms: int = 120_000
    total_ms: int = 600_000


class Channel(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    provider: str
    upstream_model: str
    weight: int = 1
    price: Price = Price()
    timeouts: Timeouts = Timeouts()
    enabled: bool = True


class Model(msgspec.Struct, frozen=True, kw_only=True):
    slug: str
    aliases: list[str] = []
    context_length: int | None = None
    channels: list[Channel] = []


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    blocked: bool = False


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account: str
    digest: str
    """Hex SHA-256 of the secret; workers never hold the secret."""
    models: list[str] = []
    enabled: bool = True


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    keepalive_ms: int = 10_000
    max_attempts: int = 3


class RoutingSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    providers: list[Provider] = []
    models: list[Model] = []
    accounts: list[Account] = []
    keys: list[ApiKey] = []
    settings: Settings = Settings()

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self)
