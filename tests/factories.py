"""Usage events for tests that feed the metering path directly: one plausible finished request,
with whatever a test cares about changed."""

from __future__ import annotations

from typing import Any

import msgspec

from muxgate.wire import UsageEvent

_TEMPLATE = UsageEvent(
    request_id="req",
    created_ms=1_700_000_000_000,
    account_id="demo",
    key_id="k1",
    model="openai/gpt-4o-mini",
    channel_id="direct",
    provider_id="openai",
    upstream_model="gpt-4o-mini",
    prompt_tokens=10,
    completion_tokens=5,
    cached_tokens=0,
    reasoning_tokens=0,
    local_prompt_tokens=10,
    local_completion_tokens=5,
    usage_source="provider",
    cost_nano_usd=4_500,
    ttft_ms=12.5,
    total_ms=40.0,
    output_tokens_per_second=125.0,
    max_chunk_gap_ms=3.0,
    gateway_overhead_us=80,
    finish_reason="stop",
    status="ok",
    http_status=200,
    error_type=None,
    error_message=None,
    stream=False,
    cancelled=False,
    attempts=1,
    malformed_chunks=0,
)


def usage_event(request_id: str, **changes: Any) -> UsageEvent:
    return msgspec.structs.replace(_TEMPLATE, request_id=request_id, **changes)
