"""Routing settings end to end, through the official OpenAI SDK on an embedded gateway: an
account's default fallback model (set with its own API key through the management API) answers
when every channel of the requested model fails, a request's own fallback wins over it and
`"false"` turns it off; a model's own number of attempts (TOML, then the admin API) bounds its
failover, as `X-Muxgate-Attempts` and the generation record show."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from conftest import GatewayProcess, ServeOnMock, channel, gateway_toml, key, model, provider
from waiting import HANG

TEAM = "sk-test-routing-settings-team"
SOLO = "sk-test-routing-settings-solo"
ADMIN = "test-admin-routing-settings"
SETTINGS = "/api/v1/management/routing/settings"

SCRIPTS: dict[str, dict[str, object]] = {
    "down": {"error_every": 1, "error_status": 503},
    "backup": {"reply": "Backup speaking."},
    "own": {"reply": "Own fallback speaking."},
    "ok": {"reply": "Second channel speaking."},
}


def config(mock_url: str) -> str:
    return gateway_toml(
        [provider("first", mock_url), provider("second", mock_url)],
        [
            model(
                "rs/broken",
                channel("broken@first", "first", "down"),
                channel("broken@second", "second", "down"),
            ),
            model("rs/backup", channel("backup@second", "second", "backup"), aliases=["backup"]),
            model("rs/own", channel("own@first", "first", "own")),
            model(
                "rs/attempts",
                channel("attempts@first", "first", "down"),
                channel("attempts@second", "second", "ok"),
                max_attempts=1,
            ),
        ],
        [key("team-key", "team", TEAM), key("solo-key", "solo", SOLO)],
    )


@pytest.fixture(scope="module")
def gateway(serve_on_mock: ServeOnMock) -> GatewayProcess:
    return serve_on_mock(SCRIPTS, config, env={"MUXGATE_ADMIN_TOKEN": ADMIN})


def client(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=key, max_retries=0, timeout=20)


def ask(gpt: openai.OpenAI, model: str, **extra: Any) -> tuple[str, str, str]:
    """(model the response names, channel that answered, its text)."""
    raw = gpt.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "Anyone there?"}],
        extra_body=extra or None,
    )
    completion = raw.parse()
    text = completion.choices[0].message.content or ""
    return completion.model, raw.headers["x-muxgate-channel"], text


def eventually(check: Callable[[], bool], what: str, timeout: float = HANG) -> None:
    """The gateway follows a change within a second of the control plane publishing it."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the gateway did not follow: {what}")
        time.sleep(0.05)


def falls_back(gateway: GatewayProcess, key: str) -> bool:
    try:
        ask(client(gateway, key), "rs/broken")
    except openai.APIStatusError:
        return False
    return True


def set_default(gateway: GatewayProcess, fallback: str | None) -> None:
    """The team sets its default fallback itself, with its API key."""
    r = httpx.put(
        f"{gateway.url}{SETTINGS}",
        json={"default_fallback": fallback},
        headers={"authorization": f"Bearer {TEAM}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "data": {"default_fallback": fallback}}
    wanted = fallback is not None
    eventually(lambda: falls_back(gateway, TEAM) == wanted, f"default fallback {fallback}")


@pytest.fixture
def team_default(gateway: GatewayProcess) -> Iterator[None]:
    set_default(gateway, "backup")
    yield
    set_default(gateway, None)


@pytest.mark.usefixtures("team_default")
def test_the_accounts_default_fallback_answers_when_every_channel_fails(
    gateway: GatewayProcess,
) -> None:
    shown = httpx.get(
        f"{gateway.url}{SETTINGS}", headers={"authorization": f"Bearer {TEAM}"}, timeout=10
    )
    assert shown.json()["data"] == {"default_fallback": "backup"}
    assert ask(client(gateway, TEAM), "rs/broken") == (
        "rs/backup",
        "backup@second",
        "Backup speaking.",
    )
    # A model that answers itself never needs it.
    assert ask(client(gateway, TEAM), "rs/own")[0] == "rs/own"
    # The account without a default fallback gets the error.
    with pytest.raises(openai.APIStatusError) as failed:
        ask(client(gateway, SOLO), "rs/broken")
    assert failed.value.status_code == 502
    assert failed.value.response.json()["error"]["type"] == "no_provider_available"


@pytest.mark.usefixtures("team_default")
def test_the_requests_own_fallback_wins_and_false_turns_the_default_off(
    gateway: GatewayProcess,
) -> None:
    gpt = client(gateway, TEAM)
    assert ask(gpt, "rs/broken", provider={"fallback": "rs/own"})[:2] == ("rs/own", "own@first")
    faq = {"zenmux-route": {"fallback": ["rs/own"]}}
    assert ask(gpt, "rs/broken", **faq)[0] == "rs/own"
    with pytest.raises(openai.APIStatusError) as refused:
        ask(gpt, "rs/broken", provider={"fallback": "false"})
    assert refused.value.status_code == 502
    assert ask(gpt, "rs/broken")[0] == "rs/backup"


def test_a_fallback_that_names_nothing_is_refused_and_clearing_stops_it(
    gateway: GatewayProcess,
) -> None:
    auth = {"authorization": f"Bearer {TEAM}"}
    r = httpx.put(f"{gateway.url}{SETTINGS}", json={"default_fallback": "rs/nowhere"}, headers=auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "default_fallback"
    pinned = httpx.put(
        f"{gateway.url}{SETTINGS}", json={"default_fallback": "rs/backup:first"}, headers=auth
    )
    assert pinned.status_code == 422  # rs/backup has no channel on provider "first"
    set_default(gateway, "rs/own:first")
    assert ask(client(gateway, TEAM), "rs/broken")[:2] == ("rs/own", "own@first")
    set_default(gateway, None)
    assert not falls_back(gateway, TEAM)


def admin_patch(gateway: GatewayProcess, path: str, body: dict[str, Any]) -> None:
    r = httpx.patch(
        f"{gateway.url}/admin/v1{path}",
        json=body,
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def generation(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + HANG
    while True:
        r = httpx.get(
            f"{gateway.url}/api/v1/management/generation",
            params={"id": request_id},
            headers={"authorization": f"Bearer {SOLO}"},
            timeout=10,
        )
        if r.status_code == 200 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            record: dict[str, Any] = json.loads(r.content)
            return record
        time.sleep(0.05)


# The first provider's channel is tried first, and it always fails.
FIRST_THEN_SECOND = {"routing": {"type": "order", "providers": ["first", "second"]}}


def attempt(gateway: GatewayProcess) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/api/v1/chat/completions",
        json={
            "model": "rs/attempts",
            "messages": [{"role": "user", "content": "Try hard"}],
            "provider": FIRST_THEN_SECOND,
        },
        headers={"authorization": f"Bearer {SOLO}"},
        timeout=20,
    )


def test_a_models_attempts_bound_its_failover(gateway: GatewayProcess) -> None:
    # max_attempts = 1 in the file: the failing first channel's error is the answer, although
    # the settings' 3 attempts would have reached the good second channel.
    once = attempt(gateway)
    assert once.status_code == 502, once.text
    record = generation(gateway, once.headers["x-muxgate-request-id"])
    assert (record["requestRetryTimes"], record["finalRetry"]) == (0, False)
    assert record["status"] == "failed"
    with pytest.raises(openai.APIStatusError):
        ask(client(gateway, SOLO), "rs/attempts", provider=FIRST_THEN_SECOND)

    admin_patch(gateway, "/models/rs/attempts", {"max_attempts": 2})
    eventually(lambda: attempt(gateway).status_code == 200, "max_attempts 2")
    twice = attempt(gateway)
    assert twice.headers["x-muxgate-attempts"] == "2"
    assert twice.headers["x-muxgate-channel"] == "attempts@second"
    record = generation(gateway, twice.headers["x-muxgate-request-id"])
    assert (record["requestRetryTimes"], record["finalRetry"]) == (1, True)
    assert (record["status"], record["endpointSlug"]) == ("ok", "attempts@second")
    assert ask(client(gateway, SOLO), "rs/attempts", provider=FIRST_THEN_SECOND)[2] == (
        "Second channel speaking."
    )

    # Back to the settings' number (3): the failover reaches the second channel as well.
    admin_patch(gateway, "/models/rs/attempts", {"max_attempts": None})
    admin_patch(gateway, "/settings", {"max_attempts": 1})
    eventually(lambda: attempt(gateway).status_code == 502, "the settings' max_attempts 1")
    admin_patch(gateway, "/settings", {"max_attempts": 3})
    eventually(lambda: attempt(gateway).status_code == 200, "the settings' max_attempts 3")
