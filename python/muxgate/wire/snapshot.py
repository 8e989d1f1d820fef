"""The routing snapshot: everything a worker needs to route, compiled by the control plane.

Field for field the mirror of `rust/snapshot.rs`; encoded as msgpack and handed to the engine.
Money is integer nano-USD (1e-9 USD), never a float.
"""

from __future__ import annotations

from typing import Literal

import msgspec

PROTOCOLS = ("openai", "anthropic", "gemini")
"""Wire protocols a provider (a channel) may speak; the engine translates to and from each."""


class Provider(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    base_url: str
    protocol: str = "openai"
    # The worker reads the secret from this environment variable itself, so it never travels.
    credential_env: str | None = None
    headers_env: list[tuple[str, str]] = []
    """Extra headers: (name, environment variable the worker reads the value from)."""
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


class LiveStats(msgspec.Struct, frozen=True, kw_only=True):
    """A channel's recent behaviour from metering, for latency/throughput/quality routing."""

    ttft_p50_ms: float | None = None
    tokens_per_second_p50: float | None = None
    error_rate: float | None = None
    """Share of failed requests, 0 to 1."""


class Channel(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    provider: str
    upstream_model: str
    weight: int = 1
    price: Price = Price()
    timeouts: Timeouts = Timeouts()
    enabled: bool = True
    stats: LiveStats = LiveStats()


class Model(msgspec.Struct, frozen=True, kw_only=True):
    slug: str
    aliases: list[str] = []
    context_length: int | None = None
    channels: list[Channel] = []
    ttft_p50_ms: float | None = None
    """The model's recent median time to first token, for `high_latency` rules relative to it."""
    max_attempts: int | None = None
    """Attempts across the model's channels, the first included (the settings' when unset)."""


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    blocked: bool = False
    retain_content: bool = False
    """The account opted into content retention: insurance cases keep the (redacted) content."""
    default_fallback: str | None = None
    """The model tried when every channel of a requested model failed (a request's own
    `provider.fallback` wins)."""


class HighLatency(msgspec.Struct, frozen=True, kw_only=True, tag="high_latency", tag_field="type"):
    """Time to first token above `ttft_ms`, or above `p50_multiple` x the model's recent p50."""

    ttft_ms: int | None = None
    p50_multiple: float | None = None


class LowThroughput(
    msgspec.Struct, frozen=True, kw_only=True, tag="low_throughput", tag_field="type"
):
    """Output tokens per second below the minimum, once `min_output_tokens` were produced."""

    min_tokens_per_second: float
    min_output_tokens: int


class FailedStream(
    msgspec.Struct, frozen=True, kw_only=True, tag="failed_stream", tag_field="type"
):
    """The provider failed or cut the stream after its first byte."""


class UnsatisfactoryContent(
    msgspec.Struct, frozen=True, kw_only=True, tag="unsatisfactory_content", tag_field="type"
):
    """An objective check of the answer failed (empty, invalid JSON, schema, tools, repetition)."""

    repetition_ngram: int = 8
    repetition_max: int = 12


class Hallucination(
    msgspec.Struct, frozen=True, kw_only=True, tag="hallucination", tag_field="type"
):
    """A judge model grades a sample of answers later (accounts retaining content only)."""

    sample_rate: float
    judge_model: str


Trigger = HighLatency | LowThroughput | FailedStream | UnsatisfactoryContent | Hallucination


class InsuranceScope(msgspec.Struct, frozen=True, kw_only=True):
    """Requests a rule covers; an empty list covers everything."""

    models: list[str] = []
    channels: list[str] = []
    accounts: list[str] = []


class Payout(msgspec.Struct, frozen=True, kw_only=True):
    """A share of the request's cost within caps; money in nano-USD."""

    share_bp: int
    """Basis points of the cost (10 000 = all of it)."""
    max_per_request: int | None = None
    min_cost: int = 0
    max_per_account_day: int | None = None


class InsuranceRule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    trigger: Trigger
    scope: InsuranceScope = InsuranceScope()
    payout: Payout


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account: str
    digest: str
    """Hex SHA-256 of the secret; workers never hold the secret."""
    models: list[str] = []
    enabled: bool = True
    expires_at: int | None = None
    """Unix milliseconds from which the key is refused: each worker compares it with its own
    clock, so expiry holds to the second without waiting for a new snapshot."""
    credit_exhausted: bool = False
    """What the key spent reached its credit limit: refused with a 402."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    keepalive_ms: int = 10_000
    max_attempts: int = 3


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """A limit on requests and/or tokens per minute. The engine keeps one bucket per key
    (`scope` "key") or per account ("account") the limit applies to, shared by every worker.
    Of the limits of one scope that cover a request, the engine applies, for requests and for
    tokens separately, the one with the highest `priority` that sets it."""

    id: str
    scope: Literal["key", "account"]
    subjects: list[str] = []
    """Key ids (or account ids) it applies to; empty: every key (account)."""
    models: list[str] = []
    """Model patterns (`openai/gpt-*`); empty: every model."""
    rpm: int | None = None
    tpm: int | None = None
    burst: int | None = None
    """Requests at once (default: `rpm`); tokens at once are always a minute's worth."""
    priority: int = 0


class RoutingSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    providers: list[Provider] = []
    models: list[Model] = []
    accounts: list[Account] = []
    keys: list[ApiKey] = []
    settings: Settings = Settings()
    insurance: list[InsuranceRule] = []
    """Enabled insurance rules, evaluated by the engine when each request finishes."""
    limits: list[RateLimit] = []
    """Enabled rate limits, enforced by the engine before a request is sent."""

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self)
