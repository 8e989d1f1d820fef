"""Model routing through the official SDKs: `"model": "zenmux/auto"` with ZenMux's
`model_routing_config` lets the gateway pick the model — the cheapest for `price`, the dearest
for `performance`, by the request's complexity for `balanced` — within the listed models (or all
the key may use) whose context holds the request, failing over to the next candidate, naming
the model that answered and saying why in `X-Muxgate-Model-Routing`."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

from conftest import GatewayProcess, ServeOnMock, channel, gateway_toml, key, model, provider

KEY = "sk-test-auto"
# May use the three working models only: the whole pool when no models are listed.
POOL_KEY = "sk-test-auto-pool"
TIERS = ["auto/cheap", "auto/mid", "auto/premium"]

SCRIPTS: dict[str, dict[str, object]] = {
    "cheap": {"reply": "Cheap."},
    "mid": {"reply": "Mid."},
    "premium": {"reply": "Premium."},
    "down": {"error_every": 1, "error_status": 503},
}


def config(mock_url: str) -> str:
    def priced(slug: str, upstream: str, prompt: str, completion: str, **fields: object) -> Any:
        price = {"prompt": prompt, "completion": completion}
        return model(slug, channel(f"{upstream}@mock", "mock", upstream, price=price), **fields)

    return gateway_toml(
        [provider("mock", mock_url)],
        [
            priced("auto/cheap", "cheap", "0.1", "0.4"),
            priced("auto/mid", "mid", "1", "4"),
            # A context of 4 000 tokens: a long prompt does not fit.
            priced("auto/premium", "premium", "10", "40", context_length=4000),
            # The cheapest of all, and always down.
            priced("auto/broken", "down", "0.01", "0.01"),
        ],
        [
            key("auto-key", "auto", KEY),
            key("pool-key", "auto", POOL_KEY, models=TIERS),
        ],
    )


@pytest.fixture(scope="module")
def gateway(serve_on_mock: ServeOnMock) -> GatewayProcess:
    return serve_on_mock(SCRIPTS, config)


def gpt(gateway: GatewayProcess, secret: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=secret, max_retries=0)


def ask(client: openai.OpenAI, routing: dict[str, Any] | None = None, **extra: Any) -> Any:
    """The raw response to one `zenmux/auto` chat call."""
    body = {**extra, "model_routing_config": routing} if routing is not None else extra
    return client.chat.completions.with_raw_response.create(
        model="zenmux/auto",
        messages=[{"role": "user", "content": "hi"}],
        extra_body=body or None,
    )


def test_price_and_performance_take_the_cheapest_and_the_dearest(gateway: GatewayProcess) -> None:
    client = gpt(gateway)
    cheapest = ask(client, {"available_models": TIERS, "preference": "price"})
    completion = cheapest.parse()
    assert (completion.model, completion.choices[0].message.content) == ("auto/cheap", "Cheap.")
    why = cheapest.headers["x-muxgate-model-routing"]
    assert why == "preference=price; complexity=low; candidates=auto/cheap,auto/mid,auto/premium"
    dearest = ask(client, {"available_models": TIERS, "preference": "performance"}).parse()
    assert dearest.model == "auto/premium"
    stream = client.chat.completions.create(
        model="zenmux/auto",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_body={"model_routing_config": {"available_models": TIERS, "preference": "price"}},
    )
    assert {chunk.model for chunk in stream} == {"auto/cheap"}


def test_balanced_follows_the_requests_complexity(gateway: GatewayProcess) -> None:
    client = gpt(gateway, POOL_KEY)
    # No config at all: every model the key may use, balanced; a short question is simple.
    simple = ask(client)
    assert simple.parse().model == "auto/cheap"
    assert simple.headers["x-muxgate-model-routing"].startswith(
        "preference=balanced; complexity=low"
    )
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    agent = ask(client, {}, tools=[tool], reasoning_effort="high")
    assert agent.parse().model == "auto/premium"
    assert "complexity=high" in agent.headers["x-muxgate-model-routing"]
    stated = ask(client, {"task_info": {"task_type": "chat", "complexity": "medium"}})
    assert stated.parse().model == "auto/mid"


def test_provider_routing_narrows_the_candidates(gateway: GatewayProcess) -> None:
    # Only auto/mid has the listed endpoint: model routing picks among what the order allows.
    order = {"routing": {"type": "order", "providers": ["mid@mock"]}}
    routing = {"available_models": TIERS, "preference": "performance"}
    raw = ask(gpt(gateway), routing, provider=order)
    assert raw.parse().model == "auto/mid"
    assert raw.headers["x-muxgate-model-routing"].endswith("candidates=auto/mid")


def test_the_next_candidate_answers_when_the_first_fails(gateway: GatewayProcess) -> None:
    raw = ask(
        gpt(gateway), {"available_models": ["auto/broken", "auto/mid"], "preference": "price"}
    )
    assert raw.parse().model == "auto/mid"
    assert raw.headers["x-muxgate-attempts"] == "2"
    assert raw.headers["x-muxgate-channel"] == "mid@mock"


def test_a_model_whose_context_cannot_hold_the_request_is_passed_over(
    gateway: GatewayProcess,
) -> None:
    long = "lorem ipsum " * 2000  # ~24 KB: more than auto/premium's 4 000 tokens
    raw = gpt(gateway).chat.completions.with_raw_response.create(
        model="zenmux/auto",
        messages=[{"role": "user", "content": long}],
        extra_body={
            "model_routing_config": {"available_models": TIERS, "preference": "performance"}
        },
    )
    assert raw.parse().model == "auto/mid"
    assert "auto/premium" not in raw.headers["x-muxgate-model-routing"]
    with pytest.raises(openai.BadRequestError) as refused:
        gpt(gateway).chat.completions.create(
            model="zenmux/auto",
            messages=[{"role": "user", "content": long}],
            extra_body={"model_routing_config": {"available_models": [TIERS[2], TIERS[2]]}},
        )
    assert "has the context for this request" in str(refused.value)


def test_messages_route_the_same_way(gateway: GatewayProcess) -> None:
    claude = anthropic.Anthropic(base_url=f"{gateway.url}/api/anthropic", api_key=KEY)
    message = claude.messages.create(
        model="zenmux/auto",
        max_tokens=100,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={
            "model_routing_config": {"available_models": TIERS, "preference": "performance"}
        },
    )
    assert message.model == "auto/premium"
    assert message.content[0].type == "text" and message.content[0].text == "Premium."


@pytest.mark.parametrize(
    ("routing", "status", "message"),
    [
        (
            {"available_models": ["auto/cheap"]},
            400,
            "Parameter available_models of model_routing_config is not valid",
        ),
        (
            {"available_models": TIERS, "preference": "fastest"},
            400,
            "Parameter preference of model_routing_config is not valid",
        ),
        (
            {"available_models": ["auto/cheap", "auto/nowhere"]},
            404,
            "Model auto/nowhere in model_routing_config.available_models is not valid",
        ),
    ],
)
def test_an_invalid_config_is_refused_with_the_documented_error(
    gateway: GatewayProcess, routing: dict[str, Any], status: int, message: str
) -> None:
    r = httpx.post(
        f"{gateway.url}/api/v1/chat/completions",
        json={
            "model": "zenmux/auto",
            "messages": [{"role": "user", "content": "hi"}],
            "model_routing_config": routing,
        },
        headers={"authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert r.status_code == status
    assert r.json()["error"]["message"] == message
