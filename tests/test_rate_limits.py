"""Rate limits in embedded mode (buckets in the process's memory): a key's requests per
minute and an account's tokens per minute, through the OpenAI SDK, with ZenMux's 429
(`rate_limit`, `Retry-After`) and the `X-RateLimit-*` headers; token reservations are settled
with what the request really used."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import openai
import pytest

from conftest import GatewayProcess, ServeOnMock, channel, gateway_toml, key, model, provider
from waiting import HANG

KEY = "sk-test-limited"
OTHER = "sk-test-limited-other"
ADMIN = "test-admin-limits"


def config(mock_url: str) -> str:
    return gateway_toml(
        [provider("mock", mock_url)],
        [model(f"limit/{m}", channel(f"{m}@mock", "mock", m)) for m in ("mini", "slow")],
        [key("limited-key", "limited", KEY), key("other-key", "limited", OTHER)],
    )


@pytest.fixture(scope="module")
def gateway(serve_on_mock: ServeOnMock) -> GatewayProcess:
    return serve_on_mock(
        {"mini": {"reply": "Short."}, "slow": {"reply": "Slow.", "ttft_ms": 1500}},
        config,
        env={"MUXGATE_ADMIN_TOKEN": ADMIN},
    )


def policy(gateway: GatewayProcess, body: dict[str, Any]) -> None:
    before = httpx.get(f"{gateway.url}/healthz", timeout=5).json()["routing_version"]
    created = gateway.admin("POST", "rate-limit-policies", body)
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + HANG
    while httpx.get(f"{gateway.url}/healthz", timeout=5).json()["routing_version"] <= before:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def client(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=key, max_retries=0)


def ask(c: openai.OpenAI, max_tokens: int | None = None, model: str = "limit/mini") -> Any:
    extra = {} if max_tokens is None else {"max_tokens": max_tokens}
    return c.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], **extra
    )


def test_a_keys_requests_per_minute(gateway: GatewayProcess) -> None:
    policy(
        gateway,
        {"id": "key-rpm", "applies_to": "key", "subjects": ["limited-key"], "rpm": 60, "burst": 3},
    )
    limited = client(gateway, KEY)
    remaining = []
    for _ in range(3):
        raw = ask(limited)
        raw.parse()
        assert raw.headers["x-ratelimit-limit"] == "60"
        remaining.append(raw.headers["x-ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        ask(limited)
    response = refused.value.response
    assert response.json()["error"]["type"] == "rate_limit"
    assert response.json()["error"]["code"] == "429"
    assert "60 requests per minute for key limited-key" in response.json()["error"]["message"]
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-ratelimit-remaining"] == "0"
    # Another key of the same account is not limited by it; a second later there is room.
    ask(client(gateway, OTHER)).parse()
    time.sleep(1.05)
    ask(limited).parse()


def test_an_accounts_tokens_per_minute_are_reserved_then_settled(gateway: GatewayProcess) -> None:
    policy(gateway, {"id": "account-tpm", "applies_to": "account", "tpm": 3000})
    other = client(gateway, OTHER)
    # A slow answer holds its reservation (prompt and 2000 answer tokens) while it runs...
    slow = threading.Thread(target=lambda: ask(other, 2000, "limit/slow").parse())
    slow.start()
    time.sleep(0.5)
    with pytest.raises(openai.RateLimitError) as refused:
        ask(other, max_tokens=2000)
    assert "tokens per minute for account limited" in str(refused.value)
    slow.join()
    # ...and used a few tokens, not 2000: what it did not use comes back.
    deadline = time.monotonic() + HANG
    while True:
        try:
            ask(other, max_tokens=2000).parse()
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the reservation was never settled"
            time.sleep(0.1)
    with pytest.raises(openai.RateLimitError) as never:
        ask(other, max_tokens=5000)
    assert "more than account limited may use in a minute" in str(never.value)
