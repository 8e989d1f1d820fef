"""The hallucination judge end to end: an embedded gateway whose control plane grades sampled
answers by asking a judge model through the gateway itself. The mock provider plays both the
answering models and the judges (one finding a hallucination, one finding none, one answering
garbage); the official SDK makes the requests, and the account reads the verdicts later in its
claims, its generation record, its ledger and its case export."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from conftest import GatewayProcess, channel, gateway_toml, key, model, provider, start_gateway
from muxgate.mock import MockProvider, read_stats
from muxgate.store import Store
from muxgate.store import tables as t
from muxgate.store.ledger import list_entries
from waiting import HANG

ADMIN = "test-admin-token"
RETAINING = "sk-test-retaining"
PRIVATE = "sk-test-private"
JUDGE_KEY = "sk-test-judge-payer"
MAX_ATTEMPTS = 5  # JudgeSettings.max_attempts

FOUND = "The Eiffel Tower was completed in 1889, not 1925."
SCRIPTS: dict[str, dict[str, object]] = {
    "fabricating": {"reply": "The Eiffel Tower was completed in 1925 by Gustave Flaubert."},
    "sound": {"reply": "The Eiffel Tower is in Paris."},
    "unjudgeable": {"reply": "The Eiffel Tower is in Paris, I believe."},
    "judge-finds": {"reply": json.dumps({"hallucination": True, "reason": FOUND})},
    "judge-clears": {"reply": '{"hallucination": false, "reason": "The answer is accurate."}'},
    "judge-garbage": {"reply": "Looks fine to me!"},
}
# One hallucination rule per answering model, each with its own judge; every request of a
# retaining account is sampled.
RULES = [
    {
        "id": "judged-fabricating",
        "trigger": "hallucination",
        "params": {"sample_rate": 1.0, "judge_model": "hal/judge-finds"},
        "models": ["hal/fabricating"],
        "payout_percent": 40,
    },
    {
        "id": "judged-sound",
        "trigger": "hallucination",
        "params": {"sample_rate": 1.0, "judge_model": "hal/judge-clears"},
        "models": ["hal/sound"],
        "payout_percent": 40,
    },
    {
        "id": "judged-unjudgeable",
        "trigger": "hallucination",
        "params": {"sample_rate": 1.0, "judge_model": "hal/judge-garbage"},
        "models": ["hal/unjudgeable"],
        "payout_percent": 40,
    },
]


def config(mock_url: str) -> str:
    price = {"prompt": "20", "completion": "80"}
    accounts = {"retaining": RETAINING, "private": PRIVATE, "judges": JUDGE_KEY}
    return gateway_toml(
        [provider("mock", mock_url)],
        [model(f"hal/{s}", channel(f"{s}@mock", "mock", s, price=price)) for s in SCRIPTS],
        [key(f"{account}-key", account, secret) for account, secret in accounts.items()],
    )


def account_api(gateway: GatewayProcess, key: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{gateway.url}/api/v1/{path}",
        params=params,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def cases(gateway: GatewayProcess, key: str = RETAINING) -> dict[str, dict[str, Any]]:
    exported = account_api(gateway, key, "insurance/cases", format="json")
    assert exported.status_code == 200, exported.text
    return {c["request_id"]: c for c in exported.json()}


def ask(gateway: GatewayProcess, model: str, key: str = RETAINING) -> str:
    client = openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=key, max_retries=0, timeout=20)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "When was the Eiffel Tower built?"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == SCRIPTS[model.removeprefix("hal/")]["reply"]
    # Nothing is known yet when the answer leaves: the judge speaks later.
    assert "x-muxgate-insurance" not in raw.headers
    return raw.headers["x-muxgate-request-id"]


def judged_case(gateway: GatewayProcess, request_id: str, timeout: float = HANG) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        case = cases(gateway).get(request_id)
        if case is not None and case["judged_at"] is not None:
            return case
        assert time.monotonic() < deadline, f"case {request_id} never judged: {case}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def mock(start_mock: Callable[[dict[str, dict[str, object]]], MockProvider]) -> MockProvider:
    return start_mock(SCRIPTS)


@pytest.fixture(scope="module")
def gateway(
    mock: MockProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    gw = start_gateway(
        tmp_path_factory.mktemp("judge"),
        config(f"http://127.0.0.1:{mock.port}/v1"),
        # No judge URL: the embedded gateway's own is the default.
        env={
            "MUXGATE_ADMIN_TOKEN": ADMIN,
            "MUXGATE_JUDGE_KEY": JUDGE_KEY,
            "MUXGATE_JUDGE_INTERVAL": "0.1",
            "MUXGATE_JUDGE_RETRY": "0.02",
        },
    )
    for rule in RULES:
        created = gw.admin("POST", "insurance-rules", rule)
        assert created.status_code == 201, created.text
    kept = httpx.put(
        f"{gw.url}/api/v1/management/insurance/settings",
        json={"retain_content": True},
        headers={"authorization": f"Bearer {RETAINING}"},
        timeout=10,
    )
    assert kept.status_code == 200 and kept.json()["data"] == {"retain_content": True}, kept.text
    # The rules and the retention reach the worker with the next snapshot: probe until a
    # sampled request of the retaining account leaves a case.
    deadline = time.monotonic() + HANG
    while True:
        probe = ask(gw, "hal/sound")
        gw.usage_for(probe)
        if probe in cases(gw):
            break
        assert time.monotonic() < deadline, "the hallucination rules never reached the gateway"
        time.sleep(0.2)
    yield gw
    gw.stop()


def read_store(gateway: GatewayProcess, query: Any) -> list[Any]:
    async def read() -> list[Any]:
        store = await Store.open(gateway.database)
        try:
            async with store.read() as conn:
                return list((await conn.execute(query)).all())
        finally:
            await store.close()

    return asyncio.run(read())


def insurance_credits(gateway: GatewayProcess, account: str, request_id: str) -> list[int]:
    async def read() -> list[int]:
        store = await Store.open(gateway.database)
        try:
            entries = await list_entries(store, account)
        finally:
            await store.close()
        return [
            e.bonus_nano for e in entries if e.kind == "insurance" and e.request_id == request_id
        ]

    return asyncio.run(read())


def claims_of(gateway: GatewayProcess, key: str, request_id: str) -> list[dict[str, Any]]:
    listed = account_api(gateway, key, "management/insurance/claims")
    assert listed.status_code == 200, listed.text
    return [c for c in listed.json()["data"]["claims"] if c["request_id"] == request_id]


def nano(usd: Any) -> int:
    return int(Decimal(str(usd)) * 1_000_000_000)


def test_a_hallucination_found_by_the_judge_is_credited(gateway: GatewayProcess) -> None:
    request_id = ask(gateway, "hal/fabricating")
    cost = gateway.usage_for(request_id).cost_nano_usd
    assert cost > 0
    case = judged_case(gateway, request_id)
    assert case["judge_rules"] == ["judged-fabricating"]
    assert case["judges"] == [
        {
            "rule": "judged-fabricating",
            "judge_model": "hal/judge-finds",
            "hallucination": True,
            "reason": FOUND,
            "error": None,
        }
    ]
    assert case["answer"]["text"] == SCRIPTS["fabricating"]["reply"]
    credit = cost * 40 // 100
    reason = f"judge hal/judge-finds: {FOUND}"
    assert [(c["rule"], c["trigger"], c["reason"], nano(c["credit"])) for c in case["claims"]] == [
        ("judged-fabricating", "hallucination", reason, credit)
    ]

    (claim,) = claims_of(gateway, RETAINING, request_id)
    assert (claim["rule"], claim["trigger"], claim["reason"]) == (
        "judged-fabricating",
        "hallucination",
        reason,
    )
    assert (nano(claim["requested"]), nano(claim["credit"]), claim["capped"]) == (
        credit,
        credit,
        False,
    )
    assert nano(claim["cost"]) == cost

    generation = account_api(gateway, RETAINING, "management/generation", id=request_id)
    assert generation.status_code == 200, generation.text
    assert [(c["rule"], c["trigger"], nano(c["credit"])) for c in generation.json()["claims"]] == [
        ("judged-fabricating", "hallucination", credit)
    ]
    assert insurance_credits(gateway, "retaining", request_id) == [credit]


def test_a_judge_that_finds_nothing_books_nothing(gateway: GatewayProcess) -> None:
    request_id = ask(gateway, "hal/sound")
    case = judged_case(gateway, request_id)
    assert [(j["rule"], j["hallucination"], j["error"]) for j in case["judges"]] == [
        ("judged-sound", False, None)
    ]
    assert case["judges"][0]["reason"] == "The answer is accurate."
    assert case["claims"] == []
    assert claims_of(gateway, RETAINING, request_id) == []
    assert insurance_credits(gateway, "retaining", request_id) == []


def test_accounts_without_retention_are_never_sent_to_the_judge(
    gateway: GatewayProcess, mock: MockProvider
) -> None:
    before = read_stats(mock).models.get("judge-finds", 0)
    private = ask(gateway, "hal/fabricating", key=PRIVATE)
    gateway.usage_for(private)
    # A retaining account's request made after it is judged, so the judge has run since.
    retained = ask(gateway, "hal/fabricating")
    judged_case(gateway, retained)
    assert read_stats(mock).models.get("judge-finds", 0) == before + 1
    c = t.insurance_cases
    assert read_store(gateway, select(c.c.request_id).where(c.c.request_id == private)) == []
    assert cases(gateway, PRIVATE) == {}
    assert claims_of(gateway, PRIVATE, private) == []
    assert insurance_credits(gateway, "private", private) == []


def test_an_unusable_judge_is_asked_again_then_given_up(
    gateway: GatewayProcess, mock: MockProvider
) -> None:
    before = read_stats(mock).models.get("judge-garbage", 0)
    request_id = ask(gateway, "hal/unjudgeable")
    case = judged_case(gateway, request_id)
    assert case["judge_attempts"] == MAX_ATTEMPTS
    (judge,) = case["judges"]
    assert (judge["rule"], judge["judge_model"], judge["hallucination"]) == (
        "judged-unjudgeable",
        "hal/judge-garbage",
        None,
    )
    assert judge["error"].startswith(f"given up after {MAX_ATTEMPTS} attempts: ")
    assert "not JSON" in judge["error"] and "Looks fine to me!" in judge["error"]
    assert read_stats(mock).models.get("judge-garbage", 0) == before + MAX_ATTEMPTS
    assert case["claims"] == []
    assert claims_of(gateway, RETAINING, request_id) == []
    assert insurance_credits(gateway, "retaining", request_id) == []
