"""The OpenAI surface end to end: the official `openai` SDK against a gateway process started
through `muxgate serve`, in front of the mock provider scripted into every failure we route
around or report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from conftest import (
    GatewayProcess,
    Table,
    channel,
    free_port,
    gateway_toml,
    key,
    model,
    provider,
    start_gateway,
)
from muxgate.mock import MockProvider
from waiting import HANG

KEY = "sk-test-all"
LIMITED_KEY = "sk-test-limited"
UPSTREAM_SECRET = "sk-upstream-secret-4242"

SCRIPTS: dict[str, dict[str, object]] = {
    "gpt-4o-mini": {},
    "ok": {"reply": "All good here."},
    "fail-500": {"error_every": 1, "error_status": 500},
    "rate-429": {"error_every": 1, "error_status": 429, "retry_after_s": 7},
    "hang": {"hang": True},
    "cut": {"reply": "one two three four five six seven eight", "truncate_after": 3},
    "slow": {"reply": "finally", "ttft_ms": 1200},
    "paced": {"reply": " ".join(f"w{i}" for i in range(400)), "tokens_per_second": 40},
    "bad-request": {"error_every": 1, "error_status": 400},
    "malformed": {"reply": "a b c d", "malformed_after": 2},
    "secured": {"reply": "authenticated", "api_key": UPSTREAM_SECRET},
}

PRICE = {"prompt": "0.15", "completion": "0.60", "cached": "0.075"}


def config(mock_url: str, dead_url: str) -> str:
    def priced(cid: str, provider: str, upstream: str, weight: int = 1, **fields: object) -> Table:
        return channel(cid, provider, upstream, weight=weight, price=PRICE, **fields)

    fast_timeout = {"first_byte_seconds": 0.5}
    return gateway_toml(
        [
            provider("mock", mock_url),
            provider("mock2", mock_url),
            provider("dead", dead_url, connect_timeout_seconds=1),
            provider("mock-auth", mock_url, credential_env="MUXGATE_TEST_UPSTREAM_KEY"),
            provider("mock-wrong-auth", mock_url, credential_env="MUXGATE_TEST_WRONG_KEY"),
        ],
        [
            model(
                "openai/gpt-4o-mini",
                priced("mini-a", "mock", "gpt-4o-mini", 3),
                priced("mini-b", "mock2", "gpt-4o-mini", 1),
                aliases=["gpt-4o-mini"],
            ),
            model(
                "test/refused",
                priced("refused-dead", "dead", "ok", 100),
                priced("refused-ok", "mock", "ok"),
            ),
            model(
                "test/fail500",
                priced("fail500-five", "mock", "fail-500", 100),
                priced("fail500-ok", "mock2", "ok"),
            ),
            model(
                "test/fail429",
                priced("fail429-limited", "mock", "rate-429", 100),
                priced("fail429-ok", "mock", "ok"),
            ),
            model(
                "test/timeout",
                priced("timeout-hangs", "mock", "hang", 100, timeouts=fast_timeout),
                priced("timeout-ok", "mock2", "ok"),
            ),
            model(
                "test/all-fail",
                priced("all-fail-five", "mock", "fail-500"),
                priced("all-fail-dead", "dead", "ok"),
            ),
            model(
                "test/all-429",
                priced("l1", "mock", "rate-429"),
                priced("l2", "mock2", "rate-429"),
            ),
            model(
                "test/all-timeout",
                priced("all-timeout-hangs", "mock", "hang", 1, timeouts=fast_timeout),
            ),
            model("test/cut", priced("cuts", "mock", "cut")),
            model("test/slow", priced("slow", "mock", "slow")),
            model("test/paced", priced("paced", "mock", "paced")),
            model("test/bad-request", priced("strict", "mock", "bad-request")),
            model("test/malformed", priced("sloppy", "mock", "malformed")),
            model("test/secured", priced("secured", "mock-auth", "secured")),
            model("test/wrong-credential", priced("wrong", "mock-wrong-auth", "secured")),
        ],
        [
            key("all", "team", KEY),
            key("limited", "team", LIMITED_KEY, models=["test/*"]),
            key("disabled", "team", "sk-test-disabled", enabled=False),
            key("overdue", "overdue", "sk-test-overdue"),
        ],
        accounts=[{"id": "team"}, {"id": "overdue", "blocked": True}],
        extra="[gateway]\nkeepalive_seconds = 0.3\nmax_attempts = 3\nmax_body_bytes = 65536\n",
    )


@pytest.fixture(scope="module")
def mock(start_mock: Callable[[dict[str, dict[str, object]]], MockProvider]) -> MockProvider:
    return start_mock(SCRIPTS)


@pytest.fixture(scope="module")
def gateway(
    mock: MockProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("gateway")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    env = {
        "MUXGATE_TEST_UPSTREAM_KEY": UPSTREAM_SECRET,
        "MUXGATE_TEST_WRONG_KEY": "sk-not-the-right-one-99",
    }
    gw = start_gateway(tmp, config(f"http://127.0.0.1:{mock.port}/v1", dead), env)
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=KEY, max_retries=0, timeout=20)


def ask(client: openai.OpenAI, model: str, **kw: object) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello"}],
        **kw,  # type: ignore[arg-type]
    )


def raw_stream(gateway: GatewayProcess, model: str) -> str:
    """A streamed completion as the bytes on the wire, read without any SSE client."""
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.stream(
        "POST",
        f"{gateway.url}/api/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {KEY}"},
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        return r.read().decode()


# --- the happy path ---------------------------------------------------------------------


def test_chat_completion_returns_answer_usage_and_our_headers(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
    )
    completion = raw.parse()
    assert "Say hello" in (completion.choices[0].message.content or "")
    assert completion.model == "openai/gpt-4o-mini"
    request_id = raw.headers["x-muxgate-request-id"]
    assert completion.id == request_id
    assert raw.headers["x-muxgate-channel"] in {"mini-a", "mini-b"}
    assert int(raw.headers["x-muxgate-overhead-us"]) >= 0
    assert completion.usage is not None
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0

    event = gateway.usage_for(request_id)
    assert event.status == "ok" and event.usage_source == "provider" and not event.stream
    assert (event.prompt_tokens, event.completion_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    # The provider's counts and our own o200k counts agree exactly on an OpenAI model.
    assert event.local_prompt_tokens == event.prompt_tokens
    assert event.local_completion_tokens == event.completion_tokens
    # $0.15 / $0.60 per million tokens, in nano-USD, integer arithmetic.
    expected = (
        event.prompt_tokens * 150_000_000 + event.completion_tokens * 600_000_000 + 500_000
    ) // 1_000_000
    assert event.cost_nano_usd == expected
    assert event.account_id == "team" and event.key_id == "all"
    assert event.finish_reason == "stop" and event.attempts == 1


def test_v1_alias_and_model_alias(gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)
    completion = ask(client, "gpt-4o-mini")
    assert completion.model == "openai/gpt-4o-mini"


def test_stream_without_usage_has_no_usage_chunk(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "stream me"}], stream=True
    )
    chunks = list(raw.parse())
    assert len(chunks) > 3
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "no empty-choices usage chunk without include_usage"
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "stream me" in text
    event = gateway.usage_for(raw.headers["x-muxgate-request-id"])
    assert event.stream and event.status == "ok" and event.usage_source == "provider"
    assert event.completion_tokens > 0 and event.ttft_ms is not None


def test_stream_with_include_usage_ends_with_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_ends_with_done_on_the_wire(gateway: GatewayProcess) -> None:
    text = raw_stream(gateway, "openai/gpt-4o-mini")
    events = [e for e in text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_models_list_is_filtered_by_key(gateway: GatewayProcess, client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"openai/gpt-4o-mini", "test/fail500"} <= ids
    limited = openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=LIMITED_KEY, max_retries=0)
    limited_ids = {m.id for m in limited.models.list()}
    assert "openai/gpt-4o-mini" not in limited_ids and "test/fail500" in limited_ids


def test_provider_credential_comes_from_environment(client: openai.OpenAI) -> None:
    assert ask(client, "test/secured").choices[0].message.content == "authenticated"


# --- failover before the first byte -----------------------------------------------------


@pytest.mark.parametrize(
    "model",
    ["test/refused", "test/fail500", "test/fail429", "test/timeout"],
)
@pytest.mark.parametrize("stream", [False, True])
def test_failover_to_next_channel(
    client: openai.OpenAI, gateway: GatewayProcess, model: str, stream: bool
) -> None:
    ok_channel = model.removeprefix("test/") + "-ok"
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=stream
    )
    if not (stream and model == "test/timeout"):
        assert raw.headers["x-muxgate-channel"] == ok_channel
    # else: the 0.5 s wait outlasted the 0.3 s keep-alive, so the stream opened (with a
    # ": processing" comment) before any channel had answered; the usage event names it.
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        text = raw.parse().choices[0].message.content or ""
    assert text == "All good here."
    event = gateway.usage_for(raw.headers["x-muxgate-request-id"])
    assert event.channel_id == ok_channel and event.status == "ok"


def test_every_channel_failing_is_502_no_provider_available(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        ask(client, "test/all-fail")
    assert info.value.status_code == 502
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "no_provider_available" and body["code"] == "502"


def test_every_channel_rate_limited_is_429_with_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        ask(client, "test/all-429")
    assert info.value.response.headers["retry-after"] == "7"
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "rate_limit"


def test_every_channel_timing_out_is_504(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        ask(client, "test/all-timeout")
    assert info.value.status_code == 504


def test_upstream_credential_never_leaks(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        ask(client, "test/wrong-credential")
    assert "sk-not-the-right-one-99" not in info.value.response.text
    assert "sk-not-the-right-one-99" not in gateway.log()
    assert UPSTREAM_SECRET not in gateway.log()


def test_provider_400_is_returned_not_failed_over(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(client, "test/bad-request")
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "invalid_params"


# --- failures after the first byte ------------------------------------------------------


def test_cut_stream_raises_in_client_and_is_metered_as_failed(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="test/cut", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received: list[str] = []

    def consume() -> None:
        for chunk in raw.parse():
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError, match="before it completed"):
        consume()
    assert "".join(received).strip()
    event = gateway.usage_for(raw.headers["x-muxgate-request-id"])
    assert event.status == "failed" and event.usage_source == "local"
    assert event.completion_tokens == event.local_completion_tokens > 0
    assert event.error_type == "provider_error"


def test_cut_stream_on_the_wire_ends_with_error_not_done(gateway: GatewayProcess) -> None:
    text = raw_stream(gateway, "test/cut")
    events = [e for e in text.split("\n\n") if e]
    assert "[DONE]" not in text
    last = json.loads(events[-1].removeprefix("data: "))
    assert last["error"]["type"] == "provider_error"


def test_malformed_chunks_are_dropped_and_counted(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="test/malformed", messages=[{"role": "user", "content": "x"}], stream=True
    )
    list(raw.parse())
    event = gateway.usage_for(raw.headers["x-muxgate-request-id"])
    assert event.malformed_chunks == 1 and event.status == "ok"


def test_keepalive_comments_while_waiting(gateway: GatewayProcess) -> None:
    text = raw_stream(gateway, "test/slow")
    assert text.count(": processing\n\n") >= 2
    assert text.rstrip().endswith("data: [DONE]")
    assert "finally" in text


def test_client_disconnect_cancels_upstream_and_records_partial_usage(
    gateway: GatewayProcess, mock: MockProvider
) -> None:
    before = json.loads(mock.stats())["client_disconnects"]
    body = {"model": "test/paced", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.stream(
        "POST",
        f"{gateway.url}/api/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {KEY}"},
    ) as r:
        request_id = r.headers["x-muxgate-request-id"]
        for seen, _ in enumerate(r.iter_raw(), start=1):
            if seen >= 3:
                break
    event = gateway.usage_for(request_id)
    assert event.cancelled and event.status == "cancelled"
    assert event.completion_tokens > 0
    # The upstream saw the connection go away (a stream that runs to its end is no disconnect).
    deadline = time.monotonic() + HANG
    while json.loads(mock.stats())["client_disconnects"] == before:
        assert time.monotonic() < deadline, "upstream request was not cancelled"
        time.sleep(0.02)


# --- errors in our format, mapped to the SDK's exception classes ------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "Parameter model is required"),
        ({"model": "openai/gpt-4o-mini"}, "Parameter messages is required"),
        ({"model": "openai/gpt-4o-mini", "messages": []}, "Parameter messages can not be empty"),
        (
            {"model": 3, "messages": [{"role": "user", "content": "x"}]},
            "Parameter model is not valid",
        ),
        (
            {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "n": 2},
            "Parameter n greater than 1 is not supported",
        ),
        (
            {
                "model": "openai/gpt-4o-mini",
                "messages": [{"role": "user", "content": "x"}],
                "stream_options": {"include_usage": True},
            },
            "Parameter stream_options is not supported while stream is false",
        ),
    ],
)
def test_invalid_params_are_400(
    client: openai.OpenAI, body: dict[str, object], message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/chat/completions", body=body, cast_to=object)
    assert info.value.body == {"code": "400", "type": "invalid_params", "message": message}


def test_malformed_json_is_400(gateway: GatewayProcess) -> None:
    r = httpx.post(
        f"{gateway.url}/api/v1/chat/completions",
        content=b"{not json",
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_params"
    assert r.headers["x-muxgate-request-id"]


@pytest.mark.parametrize("key", ["sk-wrong", "sk-test-disabled"])
def test_invalid_key_is_401(gateway: GatewayProcess, key: str) -> None:
    bad = openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        ask(bad, "openai/gpt-4o-mini")
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "401"


def test_missing_key_is_401(gateway: GatewayProcess) -> None:
    r = httpx.post(f"{gateway.url}/api/v1/chat/completions", json={"model": "x", "messages": []})
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_api_key"


def test_model_not_allowed_for_key_is_403(gateway: GatewayProcess) -> None:
    limited = openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=LIMITED_KEY, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as info:
        ask(limited, "openai/gpt-4o-mini")
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "access_denied"


def test_blocked_account_is_402(gateway: GatewayProcess) -> None:
    overdue = openai.OpenAI(
        base_url=f"{gateway.url}/api/v1", api_key="sk-test-overdue", max_retries=0
    )
    with pytest.raises(openai.APIStatusError) as info:
        ask(overdue, "openai/gpt-4o-mini")
    assert info.value.status_code == 402
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "insufficient_credit"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        ask(client, "nobody/nothing")
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "invalid_model"


def test_body_over_the_cap_is_413(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x" * 70_000}]
        )
    assert info.value.status_code == 413


def test_unknown_path_and_wrong_method(gateway: GatewayProcess) -> None:
    assert httpx.get(f"{gateway.url}/api/v1/nothing").status_code == 404
    r = httpx.get(f"{gateway.url}/api/v1/chat/completions")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_one_usage_event_per_routed_request(gateway: GatewayProcess, client: openai.OpenAI) -> None:
    ids = [
        ask(client, "openai/gpt-4o-mini").id,
        ask(client, "test/fail500").id,
    ]
    for request_id in ids:
        gateway.usage_for(request_id)
    events = gateway.usage()
    assert len({e.request_id for e in events}) == len(events), "no duplicates"


def test_demo_serve_answers_without_config(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, None)
    try:
        key = (tmp_path / "data" / "demo-key").read_text().strip()
        demo = openai.OpenAI(base_url=f"{gw.url}/api/v1", api_key=key, max_retries=0)
        assert ask(demo, "openai/gpt-4o-mini").choices[0].message.content
        assert {m.id for m in demo.models.list()} >= {
            "openai/gpt-4o-mini",
            "anthropic/claude-sonnet-4.5",
        }
        assert key in gw.log(), "the demo key is printed on start"
    finally:
        gw.stop()
