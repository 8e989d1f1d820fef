"""The account's management API (`/api/v1/management`) on an embedded gateway: generation
records with itemized cost, the balance after charges (bonus first), usage statistics, and
isolation between accounts."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest

from conftest import GatewayProcess, ServeOnMock, channel, gateway_toml, key, model, provider
from waiting import HANG

ALICE = "sk-test-alice-1"
ALICE_2 = "sk-test-alice-2"
BOB = "sk-test-bob-1"
# $2 / $10 per million: a 'Hello! You said: ...' answer costs a few micro-dollars.
PRICE = {"prompt": "2", "completion": "10"}


def config(mock_url: str) -> str:
    return gateway_toml(
        [provider("mock", mock_url), provider("nowhere", "http://127.0.0.1:9/v1")],
        [
            model("test/mini", channel("mini@mock", "mock", "mini", price=PRICE)),
            model("test/other", channel("other@mock", "mock", "other", price=PRICE)),
            model("test/broken", channel("broken@nowhere", "nowhere", "mini", price=PRICE)),
        ],
        [
            key("alice-1", "alice", ALICE),
            key("alice-2", "alice", ALICE_2),
            key("bob-1", "bob", BOB),
        ],
    )


@pytest.fixture(scope="module")
def gateway(serve_on_mock: ServeOnMock) -> GatewayProcess:
    return serve_on_mock({"mini": {}, "other": {}}, config)


def management(gateway: GatewayProcess, path: str, key: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{gateway.url}/api/v1/management/{path}",
        params=params,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def generation(gateway: GatewayProcess, request_id: str, key: str) -> dict[str, Any]:
    """The record, once the control plane has metered the request."""
    deadline = time.monotonic() + HANG
    while True:
        r = management(gateway, "generation", key, id=request_id)
        if r.status_code == 200 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            body: dict[str, Any] = json.loads(r.content, parse_float=Decimal)
            return body
        time.sleep(0.05)


def chat(gateway: GatewayProcess, key: str, model: str = "test/mini", stream: bool = False) -> str:
    client = openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=key, max_retries=0)
    messages: Any = [{"role": "user", "content": "Hello there"}]
    if stream:
        raw_stream = client.chat.completions.with_raw_response.create(
            model=model, messages=messages, stream=True
        )
        list(raw_stream.parse())
        return raw_stream.headers["x-muxgate-request-id"]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    raw.parse()
    return raw.headers["x-muxgate-request-id"]


def test_generation_record_itemizes_the_cost(gateway: GatewayProcess) -> None:
    request_id = chat(gateway, ALICE)
    record = generation(gateway, request_id, ALICE)
    event = gateway.usage_for(request_id)
    tokens = record["nativeTokens"]
    assert record["generationId"] == request_id and record["api"] == "chat.completions"
    assert record["model"] == "test/mini" and record["endpointSlug"] == "mini@mock"
    assert tokens["prompt_tokens"] == event.prompt_tokens > 0
    assert tokens["completion_tokens"] == event.completion_tokens > 0
    assert tokens["total_tokens"] == event.prompt_tokens + event.completion_tokens
    assert record["streamed"] is False and record["finishReason"] == "stop"
    assert record["requestRetryTimes"] == 0 and record["finalRetry"] is False
    # $2 and $10 per million tokens, itemized exactly; the bill is the total rounded to 1e-9.
    items = {d["feeItemCode"]: d for d in record["ratingResponses"]["ratingDetails"]}
    assert items["prompt"]["rate"] == 2 and items["completion"]["rate"] == 10
    assert items["prompt"]["billAmount"] == Decimal(event.prompt_tokens * 2) / 10**6
    assert items["completion"]["billAmount"] == Decimal(event.completion_tokens * 10) / 10**6
    assert record["usage"] == Decimal(event.cost_nano_usd) / 10**9
    assert record["usage"] == items["prompt"]["billAmount"] + items["completion"]["billAmount"]


def test_generation_record_names_the_protocol_the_client_spoke(gateway: GatewayProcess) -> None:
    hello: Any = [{"role": "user", "content": "Hello there"}]
    claude = anthropic.Anthropic(base_url=f"{gateway.url}/api/anthropic", api_key=ALICE)
    messages = claude.messages.with_raw_response.create(
        model="test/mini", max_tokens=64, messages=hello
    )
    client = openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=ALICE, max_retries=0)
    responses = client.responses.with_raw_response.create(model="test/mini", input="Hello there")
    gemini = httpx.post(
        f"{gateway.url}/api/vertex-ai/v1/publishers/test/models/mini:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]},
        headers={"x-goog-api-key": ALICE},
        timeout=10,
    )
    assert gemini.status_code == 200, gemini.text
    for raw, api in [
        (messages, "messages"),
        (responses, "responses"),
        (gemini, "generateContent"),
    ]:
        record = generation(gateway, raw.headers["x-muxgate-request-id"], ALICE)
        assert record["api"] == api


def test_a_failed_generation_names_the_channel_it_last_tried(gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=ALICE, max_retries=0)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(
            model="test/broken", messages=[{"role": "user", "content": "Hello there"}]
        )
    request_id = failed.value.response.headers["x-muxgate-request-id"]
    record = generation(gateway, request_id, ALICE)
    assert (record["status"], record["endpointSlug"]) == ("failed", "broken@nowhere")
    assert record["usage"] == 0


def test_streamed_generation_is_marked_streamed(gateway: GatewayProcess) -> None:
    record = generation(gateway, chat(gateway, ALICE, stream=True), ALICE)
    assert record["streamed"] is True and record["latency"] is not None


def test_another_account_cannot_read_a_generation(gateway: GatewayProcess) -> None:
    request_id = chat(gateway, ALICE)
    generation(gateway, request_id, ALICE_2)  # any key of the same account may
    r = management(gateway, "generation", BOB, id=request_id)
    assert r.status_code == 404 and r.json()["error"]["code"] == "404"


def test_balance_spends_the_bonus_first(gateway: GatewayProcess) -> None:
    before = management(gateway, "payg/balance", BOB).json()["data"]
    assert before["currency"] == "usd" and before["top_up_credits"] == 0
    assert Decimal(str(before["total_credits"])) == Decimal(str(before["bonus_credits"])) > 0
    request_id = chat(gateway, BOB)
    cost = Decimal(gateway.usage_for(request_id).cost_nano_usd) / 10**9
    assert cost > 0
    deadline = time.monotonic() + HANG
    while True:
        r = management(gateway, "payg/balance", BOB)
        after = json.loads(r.content, parse_float=Decimal)["data"]
        if after["total_credits"] != before["total_credits"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after["bonus_credits"] == Decimal(str(before["bonus_credits"])) - cost
    assert after["top_up_credits"] == 0


def test_usage_statistics_by_bucket_model_and_key(gateway: GatewayProcess) -> None:
    start = datetime.now(UTC)
    ids = [chat(gateway, ALICE), chat(gateway, ALICE), chat(gateway, ALICE_2, "test/other")]
    events = [gateway.usage_for(i) for i in ids]
    chat(gateway, BOB)  # another account's traffic never shows up
    params = {"starting_at": start.isoformat(), "bucket_width": "1h"}
    data = management(gateway, "usage", ALICE, **params).json()["data"]
    assert data["bucket_width"] == "1h"
    assert data["total"]["requests"] == 3 and data["total"]["failed_requests"] == 0
    completion = sum(e.completion_tokens for e in events)
    assert data["total"]["completion_tokens"] == completion
    assert sum(b["requests"] for b in data["series"]) == 3
    assert all(b["bucket"].endswith(":00:00Z") for b in data["series"])
    assert {m["model"]: m["requests"] for m in data["by_model"]} == {
        "test/mini": 2,
        "test/other": 1,
    }
    assert {k["key_id"]: k["requests"] for k in data["by_key"]} == {"alice-1": 2, "alice-2": 1}
    only = management(gateway, "usage", ALICE, model="test/other", **params).json()["data"]
    assert only["total"]["requests"] == 1
    daily = management(gateway, "usage", ALICE_2, starting_at=start.isoformat()).json()["data"]
    assert daily["bucket_width"] == "1d" and daily["total"]["requests"] == 3
    assert len(daily["series"][0]["bucket"]) == len("2026-11-23")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bucket_width": "1w"}, "bucket_width"),
        ({"starting_at": "yesterday"}, "starting_at"),
        ({"starting_at": "2030-01-01T00:00:00Z", "ending_at": "2029-01-01T00:00:00Z"}, None),
    ],
)
def test_bad_statistics_parameters_are_400(
    gateway: GatewayProcess, params: dict[str, str], field: str | None
) -> None:
    r = management(gateway, "usage", ALICE, **params)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "400"
    if field is not None:
        assert error["field"] == field


@pytest.mark.parametrize("key", [None, "sk-not-a-key"])
def test_management_needs_a_valid_key(gateway: GatewayProcess, key: str | None) -> None:
    headers = {} if key is None else {"x-api-key": key}
    r = httpx.get(f"{gateway.url}/api/v1/management/payg/balance", headers=headers)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
