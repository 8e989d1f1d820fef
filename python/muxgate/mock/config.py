"""Mock provider configuration: msgspec mirrors of the Rust serde types in `rust/mock/script.rs`
and `rust/mock/stats.rs`. Defaults are omitted when encoding, so the Rust side's apply."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated

import msgspec

NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class MockToolCall(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One tool call of a scripted answer."""

    name: Annotated[str, msgspec.Meta(min_length=1)]
    arguments: str
    """The arguments as JSON object text, e.g. `{"city": "Paris"}`."""

    def __post_init__(self) -> None:
        try:
            arguments = json.loads(self.arguments)
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise ValueError("tool call arguments must be a JSON object")


class MockScript(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What one model does, on every protocol; every field is optional and the defaults give a
    healthy model. Content chunks are the stream chunks of the thinking, the text and the tool
    call arguments (pieces of a few bytes; one chunk per call on Gemini)."""

    reply: str | None = None
    """Fixed answer text; default: a sentence quoting the last user message, or no text when
    the model makes tool_calls."""
    thinking: str | None = None
    """Reasoning streamed before the answer; its tokens count as reasoning tokens."""
    tool_calls: list[MockToolCall] = msgspec.field(default_factory=list)
    """Calls the model makes after its thinking and text (finish reason: tool calls)."""
    chunks: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Stream chunks of the text, and of the thinking; default: one per word."""
    cached_tokens: NonNegative = 0
    """Prompt tokens reported as cache reads (at most the prompt's count)."""
    headers_delay_ms: NonNegative = 0
    """Delay before the response head (and before the whole body for JSON)."""
    ttft_ms: NonNegative = 0
    """Delay after the head, before the first chunk (added before the body for JSON)."""
    tokens_per_second: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Pacing of content chunks by their token counts; 0 = no pacing."""
    burst: bool = False
    """Write the whole stream in one frame (benchmarks)."""
    error_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    error_every: NonNegative = 0
    """Every n-th request (per model, since the last reload) fails; 0 = never."""
    error_status: Annotated[int, msgspec.Meta(ge=100, le=599)] = 500
    error_body: str | None = None
    """Raw body of injected failures; default: the protocol's error object for the status."""
    retry_after_s: NonNegative | None = None
    hang: bool = False
    """Read the request, then send nothing until the client goes away."""
    truncate_after: NonNegative | None = None
    """Streams: abort after n content chunks (no finish, final usage or closing event); JSON:
    abort mid-body."""
    truncate_clean: bool = False
    """With truncate_after: end the HTTP body cleanly instead of aborting the connection."""
    malformed_after: NonNegative | None = None
    """Streams: after n content chunks send one event whose data is invalid JSON."""
    error_after: NonNegative | None = None
    """Streams: after n content chunks send the protocol's in-stream error and end cleanly."""
    finish_reason: str | None = None
    """Replaces the computed finish reason, verbatim in the protocol's field."""
    api_key: str | None = None
    """Require this key: `Authorization: Bearer` (Chat Completions), `x-api-key` (Messages),
    `x-goog-api-key` or `?key=` (Gemini)."""


class MockConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Scripts by request `model`, the fallback for other models, and whether those 404."""

    models: dict[str, MockScript] = msgspec.field(default_factory=dict)
    default: MockScript = msgspec.field(default_factory=MockScript)
    strict: bool = False
    seed: NonNegative = 0
    """Seed of the error_rate draws."""


class MockStats(msgspec.Struct, kw_only=True):
    """Counters since the provider started (`MockProvider.stats()`, `GET /mock/stats`)."""

    requests: int
    models: dict[str, int]
    errors_injected: int
    streams_started: int
    streams_completed: int
    streams_truncated: int
    client_disconnects: int
    """Requests whose client went away while the mock was still waiting or sending."""
    in_flight: int


def encode_config(config: MockConfig) -> str:
    return msgspec.json.encode(config).decode()


def decode_stats(stats_json: str) -> MockStats:
    return msgspec.json.decode(stats_json, type=MockStats)


def load_config(path: str | Path) -> MockConfig:
    """Read a TOML file: top-level `strict` and `seed`, a `[default]` table, and one
    `[models."name"]` table per scripted model."""
    with Path(path).open("rb") as f:
        data = tomllib.load(f)
    return msgspec.convert(data, MockConfig)
