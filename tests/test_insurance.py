"""Quality insurance end to end: the mock provider is driven into each trigger and the official
SDKs read what the gateway says about it (a header on JSON answers, an `insurance` object beside
a stream's usage, or a final SSE comment); the control plane books each verdict as an
`insurance` credit in the bonus bucket, lists it in the generation record and the claims API,
and a normal request is never credited by the default rules."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
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
from muxgate.store import Store
from muxgate.store.ledger import list_entries
from waiting import HANG

KEY = "sk-test-insured"
# An account that keeps cases with their content, and asks with secrets in its prompts.
KEEPER = "sk-test-keeper"
ADMIN = "test-admin-token"
LOOP = "I will check the answer one more time to be sure. " * 40
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
    },
}

SCRIPTS: dict[str, dict[str, object]] = {
    "good": {"reply": "Paris is the capital of France, and it is lovely in spring."},
    "good-json": {"reply": '{"a": 1}'},
    "good-tool": {"tool_calls": [{"name": "get_weather", "arguments": '{"city": "Paris"}'}]},
    "slow": {"reply": "Eventually, an answer.", "ttft_ms": 400},
    "sluggish": {"reply": " ".join(f"w{i}" for i in range(40)), "tokens_per_second": 60},
    "cut": {"reply": "one two three four five six seven eight", "truncate_after": 3},
    "not-json": {"reply": 'Sure! {"a": 1'},
    "wrong-schema": {"reply": '{"b": "one"}'},
    "bad-args": {"tool_calls": [{"name": "get_weather", "arguments": '{"city": 5}'}]},
    "unoffered": {"tool_calls": [{"name": "launch_rocket", "arguments": "{}"}]},
    "loop": {"reply": LOOP},
    "empty": {"reply": ""},
    "capped": {"reply": "one two three four five six seven eight", "truncate_after": 3},
}

# Rules the tests add beside the default set, scoped to their own models so that the default
# thresholds (seconds) need not be waited for.
TEST_RULES = [
    {
        "id": "test-latency",
        "trigger": "high_latency",
        "params": {"ttft_ms": 250},
        "models": ["ins/slow"],
        "payout_percent": 50,
    },
    {
        "id": "test-throughput",
        "trigger": "low_throughput",
        "params": {"min_tokens_per_second": 200, "min_output_tokens": 20},
        "models": ["ins/sluggish"],
        "payout_percent": 30,
    },
    # A tiny daily cap (1.5 requests' worth, set once the cost of one is known).
    {
        "id": "test-capped",
        "trigger": "failed_stream",
        "models": ["ins/capped"],
        "payout_percent": 100,
    },
]


def config(mock_url: str) -> str:
    price = {"prompt": "20", "completion": "80"}
    return gateway_toml(
        [provider("mock", mock_url)],
        [model(f"ins/{s}", channel(f"{s}@mock", "mock", s, price=price)) for s in SCRIPTS],
        [key("insured-key", "insured", KEY), key("keeper-key", "keeper", KEEPER)],
    )


@pytest.fixture(scope="module")
def gateway(serve_on_mock: ServeOnMock) -> GatewayProcess:
    gw = serve_on_mock(SCRIPTS, config, env={"MUXGATE_ADMIN_TOKEN": ADMIN})
    for rule in TEST_RULES:
        created = gw.admin("POST", "insurance-rules", rule)
        assert created.status_code == 201, created.text
    # The default failed-stream rule would pay first on the capped model.
    scoped = gw.admin("PATCH", "insurance-rules/failed-stream", {"models": ["ins/cut"]})
    assert scoped.status_code == 200, scoped.text
    kept = httpx.put(
        f"{gw.url}/api/v1/management/insurance/settings",
        json={"retain_content": True},
        headers={"authorization": f"Bearer {KEEPER}"},
        timeout=10,
    )
    assert kept.status_code == 200, kept.text
    # The rules reach the worker with the next snapshot.
    deadline = time.monotonic() + HANG
    while "test-latency" not in probe_rules(gw):
        assert time.monotonic() < deadline, "the test rules never reached the gateway"
        time.sleep(0.1)
    return gw


def probe_rules(gateway: GatewayProcess) -> str:
    """The rules the worker applies, seen from outside: a slow answer's header names them."""
    r = httpx.post(
        f"{gateway.url}/api/v1/chat/completions",
        json={"model": "ins/slow", "messages": ask(), "stream": True},
        headers={"authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    return r.text


@pytest.fixture
def gpt(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=KEY, max_retries=0, timeout=20)


def ask(text: str = "What is the capital of France?") -> list[Any]:
    return [{"role": "user", "content": text}]


def claims_header(value: str | None) -> dict[str, Decimal]:
    """`trigger;credit=…;rule=…, …` as {rule: credit}."""
    claims: dict[str, Decimal] = {}
    for claim in (value or "").split(","):
        if not claim.strip():
            continue
        trigger, *fields = claim.strip().split(";")
        named = dict(f.split("=", 1) for f in fields)
        assert trigger
        claims[named["rule"]] = Decimal(named["credit"])
    return claims


def raw_stream(gateway: GatewayProcess, path: str, body: dict[str, Any]) -> str:
    with httpx.stream(
        "POST",
        f"{gateway.url}{path}",
        json=body,
        headers={"authorization": f"Bearer {KEY}", "x-api-key": KEY},
        timeout=20,
    ) as r:
        assert r.status_code == 200, r.read()
        return "".join(r.iter_text())


def comment_claims(text: str) -> dict[str, Decimal]:
    lines = [line for line in text.splitlines() if line.startswith(": insurance ")]
    assert len(lines) <= 1, lines
    return claims_header(lines[0].removeprefix(": insurance ") if lines else None)


def insurance_entries(
    gateway: GatewayProcess, request_id: str, account: str = "insured"
) -> list[int]:
    """The bonus credits the ledger holds for the request's claims, once metered."""

    async def read() -> list[int]:
        store = await Store.open(gateway.database)
        try:
            entries = await list_entries(store, account)
            return [
                e.bonus_nano
                for e in entries
                if e.kind == "insurance" and e.request_id == request_id
            ]
        finally:
            await store.close()

    return asyncio.run(read())


def booked(gateway: GatewayProcess, request_id: str, account: str = "insured") -> list[int]:
    gateway.usage_for(request_id)
    deadline = time.monotonic() + HANG
    while not (credits := insurance_entries(gateway, request_id, account)):
        if time.monotonic() > deadline:
            return credits
        time.sleep(0.05)
    return credits


def nano(usd: Decimal) -> int:
    return int(usd * 1_000_000_000)


# --- no false positives --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_normal_requests_are_never_credited(
    gpt: openai.OpenAI, gateway: GatewayProcess, stream: bool
) -> None:
    calls: list[dict[str, Any]] = [
        {"model": "ins/good", "messages": ask()},
        {"model": "ins/good-json", "messages": ask(), "response_format": {"type": "json_object"}},
        {"model": "ins/good-json", "messages": ask(), "response_format": SCHEMA},
        {"model": "ins/good-tool", "messages": ask(), "tools": [WEATHER_TOOL]},
    ]
    ids = []
    for call in calls * 3:
        if stream:
            raw = gpt.chat.completions.with_raw_response.create(
                **call, stream=True, stream_options={"include_usage": True}
            )
            chunks = list(raw.parse())
            assert chunks[-1].usage is not None
            assert getattr(chunks[-1], "insurance", None) is None
        else:
            raw = gpt.chat.completions.with_raw_response.create(**call)
            raw.parse()
        assert "x-muxgate-insurance" not in raw.headers
        ids.append(raw.headers["x-muxgate-request-id"])
    for request_id in ids:
        gateway.usage_for(request_id)
        assert insurance_entries(gateway, request_id) == []


# --- each trigger ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "extra", "rule"),
    [
        ("ins/not-json", {"response_format": {"type": "json_object"}}, "unsatisfactory-content"),
        ("ins/wrong-schema", {"response_format": SCHEMA}, "unsatisfactory-content"),
        ("ins/bad-args", {"tools": [WEATHER_TOOL]}, "unsatisfactory-content"),
        ("ins/unoffered", {"tools": [WEATHER_TOOL]}, "unsatisfactory-content"),
        ("ins/loop", {}, "unsatisfactory-content"),
        ("ins/empty", {}, "unsatisfactory-content"),
    ],
)
def test_json_answers_carry_the_claim_in_a_header(
    gpt: openai.OpenAI, gateway: GatewayProcess, model: str, extra: dict[str, Any], rule: str
) -> None:
    raw = gpt.chat.completions.with_raw_response.create(model=model, messages=ask(), **extra)
    raw.parse()
    claims = claims_header(raw.headers.get("x-muxgate-insurance"))
    assert list(claims) == [rule], raw.headers
    assert raw.headers["x-muxgate-insurance"].startswith("unsatisfactory_content;credit=")
    request_id = raw.headers["x-muxgate-request-id"]
    event = gateway.usage_for(request_id)
    # The default content rule refunds the whole cost.
    assert nano(claims[rule]) == event.cost_nano_usd > 0
    assert booked(gateway, request_id) == [event.cost_nano_usd]


@pytest.mark.parametrize(
    ("model", "trigger", "rule", "percent"),
    [
        ("ins/slow", "high_latency", "test-latency", 50),
        ("ins/sluggish", "low_throughput", "test-throughput", 30),
        ("ins/loop", "unsatisfactory_content", "unsatisfactory-content", 100),
    ],
)
def test_streams_carry_the_claim_beside_usage(
    gpt: openai.OpenAI,
    gateway: GatewayProcess,
    *,
    model: str,
    trigger: str,
    rule: str,
    percent: int,
) -> None:
    raw = gpt.chat.completions.with_raw_response.create(
        model=model, messages=ask(), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    last = chunks[-1]
    assert last.usage is not None
    insurance = getattr(last, "insurance", None)
    assert insurance is not None, last
    (claim,) = insurance["claims"]
    assert (claim["rule"], claim["trigger"]) == (rule, trigger)
    assert claim["reason"]
    event = gateway.usage_for(raw.headers["x-muxgate-request-id"])
    credit = event.cost_nano_usd * percent // 100
    assert credit > 0
    assert nano(Decimal(str(insurance["credit"]))) == credit
    assert booked(gateway, event.request_id) == [credit]


def test_a_stream_without_usage_ends_with_a_comment(gateway: GatewayProcess) -> None:
    text = raw_stream(
        gateway,
        "/api/v1/chat/completions",
        {"model": "ins/slow", "messages": ask(), "stream": True},
    )
    assert list(comment_claims(text)) == ["test-latency"]
    assert text.rstrip().endswith("data: [DONE]")
    assert '"insurance"' not in text


def test_a_cut_stream_is_refunded_in_full(gpt: openai.OpenAI, gateway: GatewayProcess) -> None:
    text = raw_stream(
        gateway,
        "/api/v1/chat/completions",
        {"model": "ins/cut", "messages": ask(), "stream": True},
    )
    claims = comment_claims(text)
    assert list(claims) == ["failed-stream"]
    assert "[DONE]" not in text
    request_id = json.loads(text.split("data: ", 1)[1].split("\n", 1)[0])["id"]
    event = gateway.usage_for(request_id)
    assert event.status == "failed"
    assert event.cost_nano_usd > 0
    assert nano(claims["failed-stream"]) == event.cost_nano_usd
    assert booked(gateway, request_id) == [event.cost_nano_usd]
    with pytest.raises(openai.APIError):
        list(gpt.chat.completions.create(model="ins/cut", messages=ask(), stream=True))


def test_other_surfaces_are_told_in_their_own_way(gateway: GatewayProcess) -> None:
    claude = anthropic.Anthropic(
        base_url=f"{gateway.url}/api/anthropic", api_key=KEY, max_retries=0, timeout=20
    )
    raw = claude.messages.with_raw_response.create(
        model="ins/loop", max_tokens=1000, messages=ask()
    )
    raw.parse()
    assert list(claims_header(raw.headers.get("x-muxgate-insurance"))) == ["unsatisfactory-content"]
    streamed = raw_stream(
        gateway,
        "/api/anthropic/v1/messages",
        {"model": "ins/loop", "max_tokens": 1000, "messages": ask(), "stream": True},
    )
    assert list(comment_claims(streamed)) == ["unsatisfactory-content"]
    gemini = "/api/vertex-ai/v1/publishers/ins/models/loop"
    contents = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    r = httpx.post(
        f"{gateway.url}{gemini}:generateContent",
        json=contents,
        headers={"x-goog-api-key": KEY},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    assert list(claims_header(r.headers.get("x-muxgate-insurance"))) == ["unsatisfactory-content"]
    sse = raw_stream(gateway, f"{gemini}:streamGenerateContent?alt=sse", contents)
    assert list(comment_claims(sse)) == ["unsatisfactory-content"]
    responses = raw_stream(
        gateway, "/api/v1/responses", {"model": "ins/loop", "input": "Hi", "stream": True}
    )
    assert list(comment_claims(responses)) == ["unsatisfactory-content"]


def management(gateway: GatewayProcess, path: str, key: str = KEY, **params: Any) -> Any:
    r = httpx.get(
        f"{gateway.url}/api/v1/management/{path}",
        params=params,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return json.loads(r.content, parse_float=Decimal)


def test_claims_are_listed_summed_and_in_the_generation_record(
    gpt: openai.OpenAI, gateway: GatewayProcess
) -> None:
    raw = gpt.chat.completions.with_raw_response.create(model="ins/loop", messages=ask())
    raw.parse()
    request_id = raw.headers["x-muxgate-request-id"]
    credit = claims_header(raw.headers["x-muxgate-insurance"])["unsatisfactory-content"]
    booked(gateway, request_id)
    record = management(gateway, "generation", id=request_id)
    (claim,) = record["claims"]
    assert (claim["rule"], claim["trigger"]) == ("unsatisfactory-content", "unsatisfactory_content")
    assert claim["credit"] == credit
    assert "repetition" in claim["reason"]
    page = management(gateway, "insurance/claims", trigger="unsatisfactory_content", limit=1000)
    listed = [c for c in page["data"]["claims"] if c["request_id"] == request_id]
    assert [(c["credit"], c["capped"], c["model"]) for c in listed] == [(credit, False, "ins/loop")]
    assert (
        management(gateway, "insurance/claims", trigger="high_latency", model="ins/loop")["data"][
            "claims"
        ]
        == []
    )
    summary = management(gateway, "insurance/summary")["data"]
    assert summary["count"] >= 1
    by_model = {m["model"]: m for m in summary["by_model"]}
    assert by_model["ins/loop"]["compensation"] >= credit
    assert summary["total_compensation"] == sum(t["compensation"] for t in summary["by_trigger"])


def test_the_daily_cap_holds_across_requests(gateway: GatewayProcess) -> None:
    def cut() -> tuple[str, Decimal]:
        text = raw_stream(
            gateway,
            "/api/v1/chat/completions",
            {"model": "ins/capped", "messages": ask(), "stream": True},
        )
        request_id = json.loads(text.split("data: ", 1)[1].split("\n", 1)[0])["id"]
        return request_id, comment_claims(text)["test-capped"]

    first, credit = cut()
    assert booked(gateway, first) == [nano(credit)]
    cap = credit * 3 / 2
    capped = gateway.admin("PATCH", "insurance-rules/test-capped", {"cap_per_day": str(cap)})
    assert capped.status_code == 200, capped.text
    second, _ = cut()
    third, _ = cut()
    assert booked(gateway, second) == [nano(cap) - nano(credit)]
    gateway.usage_for(third)
    time.sleep(0.3)
    assert insurance_entries(gateway, third) == []
    claims = management(gateway, "insurance/claims", model="ins/capped")["data"]["claims"]
    by_request = {c["request_id"]: c for c in claims}
    assert by_request[third]["credit"] == 0
    assert by_request[third]["capped"] is True


def test_an_account_retaining_content_keeps_a_redacted_case(gateway: GatewayProcess) -> None:
    keeper = openai.OpenAI(
        base_url=f"{gateway.url}/api/v1", api_key=KEEPER, max_retries=0, timeout=20
    )
    secret = "my key is sk-proj-abcdefghijklmnopqrstuvwxyz012345, mail me at ada@example.com"
    raw = keeper.chat.completions.with_raw_response.create(
        model="ins/not-json", messages=ask(secret), response_format={"type": "json_object"}
    )
    raw.parse()
    request_id = raw.headers["x-muxgate-request-id"]
    booked(gateway, request_id, account="keeper")
    r = httpx.get(
        f"{gateway.url}/api/v1/insurance/cases",
        params={"format": "jsonl"},
        headers={"authorization": f"Bearer {KEEPER}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    cases = [json.loads(line) for line in r.text.splitlines()]
    (case,) = [c for c in cases if c["request_id"] == request_id]
    assert case["surface"] == "chat"
    assert [c["rule"] for c in case["claims"]] == ["unsatisfactory-content"]
    assert case["answer"]["text"] == SCRIPTS["not-json"]["reply"]
    prompt = json.dumps(case["request"])
    assert "sk-proj" not in prompt and "ada@example.com" not in prompt
    assert "[SECRET]" in prompt and "[EMAIL]" in prompt
    # Nobody else reads them, and an account that keeps nothing has none.
    other = httpx.get(
        f"{gateway.url}/api/v1/insurance/cases",
        headers={"authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert other.status_code == 200
    assert request_id not in other.text


def test_the_demo_traffic_is_never_credited(tmp_path: Path) -> None:
    """`muxgate serve` without a config, the default rules on: every demo model, JSON and
    streamed, through each SDK, and nothing is ever claimed."""
    gw = start_gateway(tmp_path, None)
    try:
        key = (tmp_path / "data" / "demo-key").read_text().strip()
        demo = openai.OpenAI(base_url=f"{gw.url}/api/v1", api_key=key, max_retries=0)
        models = [m.id for m in demo.models.list()]
        assert len(models) >= 4
        ids = []
        for model in models:
            raw = demo.chat.completions.with_raw_response.create(model=model, messages=ask())
            raw.parse()
            assert "x-muxgate-insurance" not in raw.headers, (model, raw.headers)
            ids.append(raw.headers["x-muxgate-request-id"])
            text = raw_stream_with(
                gw,
                key,
                "/api/v1/chat/completions",
                {"model": model, "messages": ask(), "stream": True},
            )
            assert ": insurance" not in text, (model, text)
            claude = anthropic.Anthropic(
                base_url=f"{gw.url}/api/anthropic", api_key=key, max_retries=0
            )
            message = claude.messages.with_raw_response.create(
                model=model, max_tokens=256, messages=ask()
            )
            message.parse()
            assert "x-muxgate-insurance" not in message.headers, (model, message.headers)
            ids.append(message.headers["x-muxgate-request-id"])
        for request_id in ids:
            gw.usage_for(request_id)
            assert insurance_entries(gw, request_id, account="demo") == []
    finally:
        gw.stop()


def raw_stream_with(gateway: GatewayProcess, key: str, path: str, body: dict[str, Any]) -> str:
    with httpx.stream(
        "POST",
        f"{gateway.url}{path}",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=20,
    ) as r:
        assert r.status_code == 200, r.read()
        return "".join(r.iter_text())
