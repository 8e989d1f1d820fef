"""The usage event: one per finished request, emitted by the engine as one JSON line."""

from __future__ import annotations

from typing import Literal

import msgspec


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """One insurance rule that triggered on the request, with the credit it earns (before the
    control plane applies the per-account daily cap)."""

    rule_id: str
    trigger: str
    reason: str
    credit_nano: int


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    arguments: str


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """What the provider answered, as the client received it, in neutral form."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = []


class Case(msgspec.Struct, frozen=True, kw_only=True):
    """The content of a request, sent only for accounts that opted into content retention and
    only when a rule triggered or the request was sampled for the hallucination judge. The
    control plane redacts it before it is stored."""

    surface: Literal["chat", "responses", "messages", "gemini"]
    request: msgspec.Raw
    """The client's request body as it was sent (JSON)."""
    answer: Answer
    judge_rules: list[str] = []
    """Hallucination rules that sampled this request for the judge."""


Api = Literal["chat.completions", "responses", "messages", "generateContent"]


class UsageEvent(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    created_ms: int
    account_id: str
    key_id: str
    model: str
    api: Api = "chat.completions"
    """The protocol the client spoke."""
    channel_id: str | None
    provider_id: str | None
    upstream_model: str | None
    # Provider-reported counts, with the local counts beside them; `usage_source` says which
    # were billed ("provider", "local" for a stream cut before its usage, "none").
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    local_prompt_tokens: int
    local_completion_tokens: int
    usage_source: Literal["provider", "local", "none"]
    cost_nano_usd: int
    # The channel's prices the cost was computed with, nano-USD per million tokens.
    price_prompt: int = 0
    price_completion: int = 0
    price_cached: int = 0
    ttft_ms: float | None
    total_ms: float
    output_tokens_per_second: float | None
    max_chunk_gap_ms: float | None
    gateway_overhead_us: int
    finish_reason: str | None
    status: Literal["ok", "failed", "cancelled"]
    http_status: int
    error_type: str | None
    error_message: str | None
    stream: bool
    cancelled: bool
    attempts: int
    malformed_chunks: int
    insurance: list[Verdict] = []
    case: Case | None = None
    failovers: list[str] = []
    """Channels that failed and were failed over, in order, before the answer (or the end)."""


_decoder = msgspec.json.Decoder(UsageEvent)


def decode_usage_lines(data: bytes) -> list[UsageEvent]:
    """Events from JSON lines, as the engine emits them and the usage log stores them."""
    return [_decoder.decode(line) for line in data.splitlines() if line.strip()]
