"""Routing controls through the official SDKs: a request pins a provider with the
`model:provider` suffix, orders channels by price, latency or throughput, lists the endpoints to
try, or names fallback models — in ZenMux's `provider` object, the FAQ's `zenmux-route` and the
legacy `provider_routing_strategy` — and invalid values get the documented 400s."""

from __future__ import annotations

import contextlib
import math
import re
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from conftest import GatewayProcess, ServeOnMock, channel, gateway_toml, key, model, provider
from waiting import HANG

KEY = "sk-test-routing"
ADMIN = "test-admin-routing"
SPEED_REPLY = "one two three four five six seven eight"

SCRIPTS: dict[str, dict[str, object]] = {
    "ok": {"reply": "Routed."},
    "down": {"error_every": 1, "error_status": 503},
    "speedy": {"reply": SPEED_REPLY, "tokens_per_second": 2000},
    "slowpoke": {"reply": SPEED_REPLY, "tokens_per_second": 150},
    # Fails every other request: its channel's live error rate is about one half.
    "unreliable": {"reply": "Sometimes.", "error_every": 2, "error_status": 503},
    # A few milliseconds slower than "ok": noise, not a reason to move traffic off a weight.
    "lagging": {"reply": "Routed.", "ttft_ms": 10},
    # Every stream is cut after two chunks of its answer.
    "cutting": {"reply": SPEED_REPLY, "truncate_after": 2},
    # A 200 whose stream is broken from its first event, or is no event stream at all.
    "garbled": {
        "error_every": 1,
        "error_status": 200,
        "error_body": 'data: {"id":"chatcmpl-1","choices":[{"delta":{"content":"Hel\n\n',
    },
    "html": {"error_every": 1, "error_status": 200, "error_body": "<html>Bad gateway</html>"},
}

# One model, three providers (the same mock under three names), priced apart; the mock's
# upstream model name says which channel answered (X-Muxgate-Channel says so too).
CHANNELS = [
    # id, provider, upstream model, prompt price, completion price
    ("claude@anthropic", "anthropic", "ok", "3", "15"),
    ("claude@bedrock", "bedrock", "ok", "1", "5"),
    ("claude@vertex", "vertex", "ok", "2", "10"),
]


def config(mock_url: str) -> str:
    claude = [
        channel(cid, p, upstream, price={"prompt": prompt, "completion": completion})
        for cid, p, upstream, prompt, completion in CHANNELS
    ]
    return gateway_toml(
        [provider(p, mock_url) for p in ("anthropic", "bedrock", "vertex")],
        [
            model("route/claude", *claude, aliases=["claude-route"]),
            # Every channel of this one fails; so does the first channel of "route/flaky".
            model("route/broken", channel("broken@anthropic", "anthropic", "down")),
            model(
                "route/flaky",
                channel("flaky@anthropic", "anthropic", "down", weight=1000),
                channel("flaky@vertex", "vertex", "ok", weight=1),
            ),
            model(
                "route/weighted",
                channel("weighted@anthropic", "anthropic", "lagging", weight=3),
                channel("weighted@bedrock", "bedrock", "ok", weight=1),
            ),
            model(
                "route/cutting",
                channel("cutting@anthropic", "anthropic", "cutting", weight=10),
                channel("cutting@vertex", "vertex", "ok", weight=1),
            ),
            model(
                "route/garbled",
                channel("garbled@anthropic", "anthropic", "garbled", weight=1000),
                channel("garbled@vertex", "vertex", "ok", weight=1),
            ),
            model(
                "route/html",
                channel("html@anthropic", "anthropic", "html", weight=1000),
                channel("html@vertex", "vertex", "ok", weight=1),
            ),
            model(
                "route/speed",
                channel("speed@anthropic", "anthropic", "slowpoke"),
                channel("speed@bedrock", "bedrock", "speedy"),
                channel("speed@vertex", "vertex", "unreliable"),
            ),
        ],
        [key("router-key", "router", KEY)],
    )


@pytest.fixture(scope="module")
def gateway(serve_on_mock: ServeOnMock) -> GatewayProcess:
    return serve_on_mock(SCRIPTS, config, env={"MUXGATE_ADMIN_TOKEN": ADMIN})


@pytest.fixture
def gpt(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=KEY, max_retries=0, timeout=20)


def ask() -> list[Any]:
    return [{"role": "user", "content": "Where do I go?"}]


def served(gpt: openai.OpenAI, model: str = "route/claude", **extra: Any) -> tuple[str, str]:
    """(channel that answered, model the response names)."""
    raw = gpt.chat.completions.with_raw_response.create(
        model=model, messages=ask(), extra_body=extra or None
    )
    completion = raw.parse()
    return raw.headers["x-muxgate-channel"], completion.model


def test_the_suffix_pins_one_provider(gpt: openai.OpenAI) -> None:
    for _ in range(5):
        assert served(gpt, "route/claude:bedrock") == ("claude@bedrock", "route/claude")
    assert served(gpt, "claude-route:vertex")[0] == "claude@vertex"
    with pytest.raises(openai.BadRequestError) as refused:
        served(gpt, "route/claude:azure")
    assert "Provider azure does not serve model route/claude" in str(refused.value)


@pytest.mark.parametrize(
    "routing",
    [
        {"provider": {"routing": {"type": "priority", "primary_factor": "price"}}},
        {"provider": {"routing": {"type": "priority", "primary_factor": "cost"}}},
        {"zenmux-route": {"strategy": "cost"}},
    ],
)
def test_price_priority_takes_the_cheapest_channel(
    gpt: openai.OpenAI, routing: dict[str, Any]
) -> None:
    for _ in range(5):
        assert served(gpt, **routing)[0] == "claude@bedrock"


def test_an_order_is_tried_as_listed(gpt: openai.OpenAI) -> None:
    order = {"routing": {"type": "order", "providers": ["vertex", "anthropic/claude@anthropic"]}}
    for _ in range(5):
        assert served(gpt, provider=order)[0] == "claude@vertex"
    legacy = {"type": "specified_providers", "providers": ["anthropic"]}
    assert served(gpt, provider_routing_strategy=legacy)[0] == "claude@anthropic"
    # The listed endpoint that fails is passed over for the next one listed.
    flaky = {"routing": {"type": "order", "providers": ["anthropic", "vertex"]}}
    assert served(gpt, "route/flaky", provider=flaky)[0] == "flaky@vertex"
    only_failing = {"routing": {"type": "order", "providers": ["anthropic"]}}
    with pytest.raises(openai.APIStatusError) as failed:
        served(gpt, "route/flaky", provider=only_failing)
    assert failed.value.status_code >= 500


def test_fallback_models_answer_when_every_channel_fails(gpt: openai.OpenAI) -> None:
    channel, model = served(gpt, "route/broken", provider={"fallback": "route/claude"})
    assert model == "route/claude"
    assert channel.startswith("claude@")
    faq = {"strategy": "cost", "fallback": ["route/broken", "route/claude"]}
    assert served(gpt, "route/flaky", **{"zenmux-route": faq}) == ("flaky@vertex", "route/flaky")
    assert served(gpt, "route/broken", **{"zenmux-route": faq}) == (
        "claude@bedrock",
        "route/claude",
    )
    with pytest.raises(openai.APIStatusError) as failed:
        served(gpt, "route/broken")
    assert failed.value.response.headers["x-muxgate-attempts"] == "1"
    with pytest.raises(openai.NotFoundError) as unknown:
        served(gpt, "route/broken", provider={"fallback": "route/nowhere"})
    assert "Fallback model route/nowhere is not valid" in str(unknown.value)


def test_a_streamed_fallback_names_the_model_that_answered(gpt: openai.OpenAI) -> None:
    stream = gpt.chat.completions.create(
        model="route/broken",
        messages=ask(),
        stream=True,
        extra_body={"provider": {"fallback": "route/claude"}},
    )
    chunks = list(stream)
    assert {c.model for c in chunks} == {"route/claude"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Routed."


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"provider": {"routing": {"type": "fastest"}}},
            "Parameter type of provider.routing is not valid",
        ),
        (
            {"provider": {"routing": {"type": "order", "providers": []}}},
            "Parameter providers of provider.routing is not valid",
        ),
        (
            {"provider": {"routing": {"type": "priority", "primary_factor": "vibes"}}},
            "Parameter primary_factor of provider.routing is not valid",
        ),
        (
            {"zenmux-route": {"strategy": "random"}},
            "Parameter strategy of zenmux-route is not valid",
        ),
    ],
)
def test_invalid_routing_is_a_documented_400(
    gateway: GatewayProcess, extra: dict[str, Any], message: str
) -> None:
    r = httpx.post(
        f"{gateway.url}/api/v1/chat/completions",
        json={"model": "route/claude", "messages": ask(), **extra},
        headers={"authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["message"] == message
    assert error["type"] == "invalid_params"


def test_other_surfaces_steer_the_same_way(gateway: GatewayProcess) -> None:
    claude = anthropic.Anthropic(
        base_url=f"{gateway.url}/api/anthropic", api_key=KEY, max_retries=0, timeout=20
    )
    raw = claude.messages.with_raw_response.create(
        model="route/broken",
        max_tokens=100,
        messages=ask(),
        extra_body={"provider": {"fallback": "route/claude:vertex"}},
    )
    message = raw.parse()
    assert message.model == "route/claude"
    assert raw.headers["x-muxgate-channel"] == "claude@vertex"
    by_price = {"provider": {"routing": {"type": "priority", "primary_factor": "price"}}}
    gemini = genai.Client(
        api_key=KEY,
        vertexai=True,
        http_options=genai_types.HttpOptions(
            api_version="v1", base_url=f"{gateway.url}/api/vertex-ai", extra_body=by_price
        ),
    )
    answer = gemini.models.generate_content(model="route/claude", contents="Hi")
    assert answer.text == "Routed."
    assert answer.sdk_http_response and answer.sdk_http_response.headers
    assert answer.sdk_http_response.headers["x-muxgate-channel"] == "claude@bedrock"


def test_traffic_follows_the_weights_when_latencies_are_alike(gateway: GatewayProcess) -> None:
    # 3:1, the heavier channel 10 ms slower (noise beside any provider's time to first token).
    n, p = 800, 0.75
    picks = []
    with httpx.Client(headers={"authorization": f"Bearer {KEY}"}, timeout=20) as client:
        for _ in range(n):
            r = client.post(
                f"{gateway.url}/api/v1/chat/completions",
                json={"model": "route/weighted", "messages": ask()},
            )
            assert r.status_code == 200, r.text
            picks.append(r.headers["x-muxgate-channel"])
    heavy = picks.count("weighted@anthropic")
    assert heavy + picks.count("weighted@bedrock") == n
    # Binomial(n, 3/4): 4.5 standard deviations either side fail a correct split once in
    # about 150 000 runs.
    slack = 4.5 * math.sqrt(n * p * (1 - p))
    assert abs(heavy - n * p) <= slack, f"{heavy}/{n} on the weight-3 channel"


def stream_text(gateway: GatewayProcess, model: str) -> tuple[int, str, str]:
    """(status, channel, body) of one streamed chat completion, read to its end."""
    with httpx.stream(
        "POST",
        f"{gateway.url}/api/v1/chat/completions",
        json={"model": model, "messages": ask(), "stream": True},
        headers={"authorization": f"Bearer {KEY}"},
        timeout=20,
    ) as r:
        return r.status_code, r.headers.get("x-muxgate-channel", ""), r.read().decode()


def test_a_channel_whose_streams_break_is_ejected(gateway: GatewayProcess) -> None:
    # The cutting channel has ten times the weight, and its streams start well.
    started = time.monotonic()
    outcomes = []
    for _ in range(20):
        status, channel, body = stream_text(gateway, "route/cutting")
        assert status == 200
        outcomes.append((channel, "data: [DONE]" in body and '"error"' not in body))
    elapsed = time.monotonic() - started
    broken = [channel for channel, ok in outcomes if not ok]
    assert set(broken) <= {"cutting@anthropic"}
    assert all(ok for channel, ok in outcomes if channel == "cutting@vertex")
    # Three broken streams in a row eject it for 10 s, then for longer after each failed probe.
    assert len(broken) <= 3 + math.ceil(elapsed / 10), outcomes


@pytest.mark.parametrize("model", ["route/garbled", "route/html"])
def test_a_stream_broken_before_its_first_event_fails_over(
    gpt: openai.OpenAI, gateway: GatewayProcess, model: str
) -> None:
    stream = gpt.chat.completions.with_raw_response.create(model=model, messages=ask(), stream=True)
    request_id = stream.headers["x-muxgate-request-id"]
    healthy = f"{model.removeprefix('route/')}@vertex"
    assert stream.headers["x-muxgate-channel"] == healthy
    text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    assert text == "Routed."
    event = gateway.usage_for(request_id)
    assert (event.status, event.channel_id, event.attempts) == ("ok", healthy, 2)
    assert event.failovers == [f"{model.removeprefix('route/')}@anthropic"]
    # However often it happens, the client gets the healthy channel's answer.
    for _ in range(10):
        status, channel, body = stream_text(gateway, model)
        assert (status, channel) == (200, healthy)
        assert "Routed." in body and "data: [DONE]" in body and '"error"' not in body


def test_live_statistics_order_by_throughput_and_quality(
    gpt: openai.OpenAI, gateway: GatewayProcess
) -> None:
    # Enough traffic on each channel (pinned) for the control plane's figures.
    for pinned in ("anthropic", "bedrock", "vertex"):
        for _ in range(24):
            # The unreliable channel fails as scripted.
            with contextlib.suppress(openai.APIStatusError):
                list(
                    gpt.chat.completions.create(
                        model=f"route/speed:{pinned}", messages=ask(), stream=True
                    )
                )
    deadline = time.monotonic() + HANG
    while len([r for r in gateway.usage() if r.model == "route/speed"]) < 72:
        assert time.monotonic() < deadline, "the traffic was never metered"
        time.sleep(0.1)
    # Any catalog change republishes the snapshot, with the figures as of now.
    republished = httpx.patch(
        f"{gateway.url}/admin/v1/models/route/speed",
        json={"context_length": 200_000},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert republished.status_code == 200, republished.text
    throughput = {"provider": {"routing": {"type": "priority", "primary_factor": "throughput"}}}
    quality = {"provider": {"routing": {"type": "priority", "primary_factor": "quality"}}}
    deadline = time.monotonic() + HANG
    while served(gpt, "route/speed", **throughput)[0] != "speed@bedrock":
        assert time.monotonic() < deadline, "the live figures never reached the gateway"
        time.sleep(0.2)
    for _ in range(5):
        assert served(gpt, "route/speed", **throughput)[0] == "speed@bedrock"
        assert served(gpt, "route/speed", **quality)[0] != "speed@vertex"


def test_the_engine_explains_a_routing_decision() -> None:
    """`Engine.route`: the plan a request would follow, without sending it."""
    from muxgate import _native, wire  # noqa: PLC0415 (only this test drives the engine bare)

    engine = _native.Engine()
    channels = [
        wire.Channel(
            id=channel,
            provider=provider,
            upstream_model=upstream,
            price=wire.Price(prompt=int(prompt) * 1000, completion=int(completion) * 1000),
        )
        for channel, provider, upstream, prompt, completion in CHANNELS
    ]
    providers = [
        wire.Provider(id=p, base_url="http://127.0.0.1:9/v1")
        for p in ("anthropic", "bedrock", "vertex")
    ]
    snapshot = wire.RoutingSnapshot(
        version=1, providers=providers, models=[wire.Model(slug="route/claude", channels=channels)]
    )
    assert engine.load_snapshot(snapshot.encode()) == []
    by_price = b'{"provider": {"routing": {"type": "priority", "primary_factor": "price"}}}'
    assert engine.route("route/claude", by_price) == [
        "claude@bedrock",
        "claude@vertex",
        "claude@anthropic",
    ]
    assert engine.route("route/claude:vertex") == ["claude@vertex"]
    assert sorted(engine.route("route/claude", repeat=1000)) == sorted(c.id for c in channels)
    with pytest.raises(ValueError, match=re.escape("Parameter type of provider.routing is not")):
        engine.route("route/claude", b'{"provider": {"routing": {"type": "nope"}}}')
    with pytest.raises(ValueError, match="Model route/none is not valid"):
        engine.route("route/none")
