"""Why a gateway refuses, in each surface's own format: an expired key (401 saying so), a key
whose credit limit is reached (402 saying so), a model whose channels are disabled because
their provider's credential variable is not set (502 naming the variable, never a value); and
a restart with the same file keeps what an operator restricted through the admin API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from conftest import (
    GatewayProcess,
    ServeOnMock,
    channel,
    gateway_toml,
    key,
    model,
    provider,
    start_gateway,
)
from muxgate.mock import MockConfig, start

LIVE = "sk-refusals-live"
SPENT = "sk-refusals-spent"
EXPIRED = "sk-refusals-expired"
# Set, but empty: the gateway treats it as not set, whatever this machine's environment holds.
CREDENTIAL = "OPENAI_API_KEY"


def config(mock_url: str) -> str:
    return gateway_toml(
        [
            provider("mock", mock_url),
            provider("openai", "http://127.0.0.1:9/v1", credential_env=CREDENTIAL),
        ],
        [
            model("test/mini", channel("mini@mock", "mock", "mini")),
            model("openai/gpt-4o", channel("gpt-4o@openai", "openai", "gpt-4o")),
        ],
        [
            key("live", "acme", LIVE),
            key("spent", "acme", SPENT, credit_limit="0"),
            key("expired", "acme", EXPIRED, expires_at=datetime(2020, 1, 1, tzinfo=UTC)),
        ],
    )


@pytest.fixture(scope="module")
def gateway(serve_on_mock: ServeOnMock) -> GatewayProcess:
    return serve_on_mock({"mini": {"reply": "pong"}}, config, env={CREDENTIAL: ""})


def ask(gateway: GatewayProcess, surface: str, secret: str, slug: str) -> httpx.Response:
    """One request on `surface` (openai, anthropic or gemini), the key sent as that surface's
    clients send it."""
    text = "ping"
    if surface == "openai":
        return httpx.post(
            f"{gateway.url}/api/v1/chat/completions",
            json={"model": slug, "messages": [{"role": "user", "content": text}]},
            headers={"authorization": f"Bearer {secret}"},
            timeout=10,
        )
    if surface == "anthropic":
        return httpx.post(
            f"{gateway.url}/api/anthropic/v1/messages",
            json={"model": slug, "max_tokens": 16, "messages": [{"role": "user", "content": text}]},
            headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
            timeout=10,
        )
    author, name = slug.split("/")
    return httpx.post(
        f"{gateway.url}/api/vertex-ai/v1/publishers/{author}/models/{name}:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": text}]}]},
        headers={"x-goog-api-key": secret},
        timeout=10,
    )


def refusal(r: httpx.Response, surface: str) -> tuple[int, str, str]:
    """Status, the surface's error type (its status name on Google's) and message."""
    error = r.json()["error"]
    if surface == "openai":
        assert error["code"] == str(r.status_code)
        return r.status_code, error["type"], error["message"]
    if surface == "anthropic":
        assert r.json()["type"] == "error"
        return r.status_code, error["type"], error["message"]
    assert error["code"] == r.status_code
    return r.status_code, error["status"], error["message"]


SURFACES = ["openai", "anthropic", "gemini"]
# The error type of each status on each surface (Google's: its status name).
TYPES = {
    401: {
        "openai": "invalid_api_key",
        "anthropic": "authentication_error",
        "gemini": "UNAUTHENTICATED",
    },
    402: {
        "openai": "insufficient_credit",
        "anthropic": "billing_error",
        "gemini": "FAILED_PRECONDITION",
    },
    502: {"openai": "no_provider_available", "anthropic": "api_error", "gemini": "INTERNAL"},
}
CASES = {
    "expired": (EXPIRED, "test/mini", 401, "This API key expired at 2020-01-01T00:00:00Z"),
    "spent": (
        SPENT,
        "test/mini",
        402,
        "This API key has reached its credit limit; raise the key's limit to use it again",
    ),
    "credential not set": (
        LIVE,
        "openai/gpt-4o",
        502,
        "No provider is available for model openai/gpt-4o: channels are disabled because "
        f"{CREDENTIAL} is not set (the credential of provider openai)",
    ),
}


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("case", list(CASES))
def test_each_refusal_says_why_in_the_surfaces_format(
    gateway: GatewayProcess, surface: str, case: str
) -> None:
    secret, slug, status, message = CASES[case]
    assert ask(gateway, surface, LIVE, "test/mini").status_code == 200
    r = ask(gateway, surface, secret, slug)
    assert refusal(r, surface) == (status, TYPES[status][surface], message), r.text


ADMIN = "mxa-test-refusals-admin"


def test_a_restart_with_the_file_keeps_what_the_admin_api_restricted(tmp_path: Path) -> None:
    """`muxgate serve --config` again after an operator disabled one key and revoked another
    through the admin API: it starts, warns about the revoked key, and both stay refused."""
    mock = start(MockConfig(), host="127.0.0.1", port=0, threads=1)
    try:
        toml = gateway_toml(
            [provider("mock", f"http://127.0.0.1:{mock.port}/v1")],
            [model("test/mini", channel("mini@mock", "mock", "mini"))],
            [key("kept", "acme", "sk-restart-kept"), key("gone", "acme", "sk-restart-gone")],
        )
        env = {"MUXGATE_ADMIN_TOKEN": ADMIN}
        first = start_gateway(tmp_path, toml, env=env)
        try:
            assert ask(first, "openai", "sk-restart-kept", "test/mini").status_code == 200
            disabled = first.admin("PATCH", "keys/kept", {"enabled": False})
            assert disabled.status_code == 200, disabled.text
            revoked = first.admin("POST", "keys/gone/revoke")
            assert revoked.status_code in (200, 201), revoked.text
        finally:
            first.stop()

        again = start_gateway(tmp_path, toml, env=env)
        try:
            status, _, message = refusal(
                ask(again, "openai", "sk-restart-kept", "test/mini"), "openai"
            )
            assert (status, message) == (401, "This API key is disabled")
            status, _, message = refusal(
                ask(again, "openai", "sk-restart-gone", "test/mini"), "openai"
            )
            assert (status, message) == (401, "Invalid API key")
            assert "keys.gone: the key is revoked; skipped" in again.log()
            assert "keys.kept.enabled: the file would loosen the key" in again.log()
        finally:
            again.stop()
    finally:
        mock.stop()
