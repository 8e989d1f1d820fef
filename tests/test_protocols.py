"""Every inbound surface to every channel protocol, through the official SDKs: the conformance
matrix. Each case runs once per channel protocol against the mock provider speaking that
protocol natively, and checks what the client reads — content, tool arguments, stop reason,
usage — against what the provider said and what was metered."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from conftest import GatewayProcess, ServeOnMock, channel, gateway_toml, key, model, provider

KEY = "sk-test-protocols"
CHANNELS = ("openai", "anthropic", "gemini")

WEATHER = {"city": "Paris", "unit": "celsius", "days": [1, 2], "note": 'say "hi"'}

SCRIPTS: dict[str, dict[str, object]] = {
    "plain": {"reply": "The quick brown fox jumps over the lazy dog."},
    "tools": {"tool_calls": [{"name": "get_weather", "arguments": json.dumps(WEATHER)}]},
    "two-tools": {
        "reply": "Checking both.",
        "tool_calls": [
            {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
            {"name": "get_time", "arguments": "{}"},
        ],
    },
    "thinking": {"thinking": "First I consider the question.", "reply": "Forty-two."},
    "cached": {"reply": "From cache.", "cached_tokens": 6},
    "fail": {"error_every": 1, "error_status": 500},
    "midfail": {"reply": "one two three four five six", "error_after": 2},
}

TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": TOOL["name"],
        "description": TOOL["description"],
        "parameters": TOOL["input_schema"],
    },
}
# A one-pixel PNG.
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def config(mock_url: str) -> str:
    base_urls = {"openai": mock_url, "anthropic": mock_url, "gemini": f"{mock_url}beta"}
    price = {"prompt": "1", "completion": "2", "cached": "0.5"}
    return gateway_toml(
        [provider(f"via-{p}", base_urls[p], protocol=p) for p in CHANNELS],
        [
            model(f"{p}/{s}", channel(f"{p}-{s}", f"via-{p}", s, price=price))
            for p in CHANNELS
            for s in SCRIPTS
        ],
        [key("k", "team", KEY)],
        extra="[gateway]\nkeepalive_seconds = 0.3\nmax_attempts = 2\n",
    )


@pytest.fixture(scope="module")
def gateway(serve_on_mock: ServeOnMock) -> GatewayProcess:
    return serve_on_mock(SCRIPTS, config)


@pytest.fixture
def claude(gateway: GatewayProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=f"{gateway.url}/api/anthropic", api_key=KEY, max_retries=0, timeout=20
    )


@pytest.fixture
def gemini(gateway: GatewayProcess) -> genai.Client:
    options = genai_types.HttpOptions(api_version="v1", base_url=f"{gateway.url}/api/vertex-ai")
    return genai.Client(api_key=KEY, vertexai=True, http_options=options)


@pytest.fixture
def gpt(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=KEY, max_retries=0, timeout=20)


def ask(text: str = "Say hello") -> list[Any]:
    return [{"role": "user", "content": text}]


# --- Anthropic Messages inbound -----------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_messages_plain_answer_usage_and_metering(
    claude: anthropic.Anthropic, gateway: GatewayProcess, channel: str
) -> None:
    raw = claude.messages.with_raw_response.create(
        model=f"{channel}/plain", max_tokens=256, messages=ask()
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.model == f"{channel}/plain"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == SCRIPTS["plain"]["reply"]  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    request_id = raw.headers["x-muxgate-request-id"]
    assert message.id == request_id
    event = gateway.usage_for(request_id)
    assert event.status == "ok" and event.usage_source == "provider"
    assert event.channel_id == f"{channel}-plain"
    assert event.prompt_tokens == message.usage.input_tokens > 0
    assert event.completion_tokens == message.usage.output_tokens > 0
    assert event.finish_reason == "stop"


@pytest.mark.parametrize("channel", CHANNELS)
def test_messages_stream_matches_the_complete_answer(
    claude: anthropic.Anthropic, gateway: GatewayProcess, channel: str
) -> None:
    whole = claude.messages.create(model=f"{channel}/plain", max_tokens=256, messages=ask())
    with claude.messages.stream(model=f"{channel}/plain", max_tokens=256, messages=ask()) as s:
        deltas = list(s.text_stream)
        final = s.get_final_message()
    assert len(deltas) > 3, "streamed piece by piece"
    assert "".join(deltas) == whole.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens
    event = gateway.usage_for(final.id)
    assert event.stream and event.status == "ok"
    assert event.completion_tokens == final.usage.output_tokens


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("stream", [False, True])
def test_messages_tool_call_arguments_arrive_whole(
    claude: anthropic.Anthropic, channel: str, stream: bool
) -> None:
    kwargs: dict[str, Any] = {
        "model": f"{channel}/tools",
        "max_tokens": 256,
        "messages": ask("Weather in Paris?"),
        "tools": [TOOL],
    }
    if stream:
        with claude.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = claude.messages.create(**kwargs)
    calls = [b for b in message.content if b.type == "tool_use"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert calls[0].input == WEATHER
    assert calls[0].id
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("channel", CHANNELS)
def test_messages_parallel_tool_calls_stream(claude: anthropic.Anthropic, channel: str) -> None:
    with claude.messages.stream(
        model=f"{channel}/two-tools", max_tokens=256, messages=ask(), tools=[TOOL]
    ) as s:
        message = s.get_final_message()
    kinds = [b.type for b in message.content]
    assert kinds == ["text", "tool_use", "tool_use"]
    assert [b.input for b in message.content[1:]] == [{"city": "Paris"}, {}]  # type: ignore[union-attr]
    assert len({b.id for b in message.content[1:]}) == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("channel", CHANNELS)
def test_messages_tool_result_turn_and_image_input(
    claude: anthropic.Anthropic, channel: str
) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": WEATHER}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 degrees"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                },
                {"type": "text", "text": "And this picture?"},
            ],
        },
    ]
    message = claude.messages.create(
        model=f"{channel}/plain", max_tokens=256, messages=messages, tools=[TOOL]
    )
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("stream", [False, True])
def test_messages_thinking_comes_back_as_thinking_blocks(
    claude: anthropic.Anthropic, channel: str, stream: bool
) -> None:
    kwargs: dict[str, Any] = {
        "model": f"{channel}/thinking",
        "max_tokens": 4096,
        "messages": ask("What is six times seven?"),
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    if stream:
        with claude.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = claude.messages.create(**kwargs)
    kinds = [b.type for b in message.content]
    assert kinds == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.thinking == SCRIPTS["thinking"]["thinking"]  # type: ignore[union-attr]
    # Signatures pass through unchanged from a Messages provider; other providers have none.
    assert bool(thinking.signature) == (channel == "anthropic")  # type: ignore[union-attr]
    assert message.content[1].text == "Forty-two."  # type: ignore[union-attr]


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("stream", [False, True])
def test_messages_max_tokens_stop(claude: anthropic.Anthropic, channel: str, stream: bool) -> None:
    kwargs: dict[str, Any] = {"model": f"{channel}/plain", "max_tokens": 3, "messages": ask()}
    if stream:
        with claude.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = claude.messages.create(**kwargs)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


@pytest.mark.parametrize("channel", CHANNELS)
def test_messages_json_schema_output_is_accepted(claude: anthropic.Anthropic, channel: str) -> None:
    response = claude.messages.with_raw_response.create(
        model=f"{channel}/plain",
        max_tokens=64,
        messages=ask(),
        extra_body={
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}
        },
    )
    assert response.http_response.status_code == 200


@pytest.mark.parametrize("channel", CHANNELS)
def test_messages_cache_reads_are_reported(
    claude: anthropic.Anthropic, gateway: GatewayProcess, channel: str
) -> None:
    message = claude.messages.create(model=f"{channel}/cached", max_tokens=64, messages=ask())
    assert message.usage.cache_read_input_tokens == 6
    event = gateway.usage_for(message.id)
    assert event.cached_tokens == 6
    assert event.prompt_tokens == message.usage.input_tokens + 6


@pytest.mark.parametrize("channel", CHANNELS)
def test_messages_upstream_error_before_the_first_byte(
    claude: anthropic.Anthropic, channel: str
) -> None:
    with pytest.raises(anthropic.APIStatusError) as failed:
        claude.messages.create(model=f"{channel}/fail", max_tokens=64, messages=ask())
    assert failed.value.status_code == 502
    body = failed.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "fail" in body["error"]["message"]


@pytest.mark.parametrize("channel", CHANNELS)
def test_messages_upstream_error_after_the_first_byte(
    claude: anthropic.Anthropic, gateway: GatewayProcess, channel: str
) -> None:
    received: list[str] = []
    with claude.messages.stream(
        model=f"{channel}/midfail", max_tokens=64, messages=ask()
    ) as stream:
        request_id = stream.response.headers["x-muxgate-request-id"]
        with pytest.raises(anthropic.APIStatusError):
            received.extend(stream.text_stream)
    assert received, "text before the failure reached the client"
    event = gateway.usage_for(request_id)
    assert event.status == "failed" and event.stream


def test_messages_errors_speak_anthropic(gateway: GatewayProcess) -> None:
    url = f"{gateway.url}/api/anthropic/v1/messages"
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    cases: list[tuple[dict[str, str], object, int, str]] = [
        ({"x-api-key": "sk-wrong"}, {}, 401, "authentication_error"),
        (headers, {"model": "openai/plain", "messages": ask()}, 400, "invalid_request_error"),
        (
            headers,
            {"model": "nope/none", "max_tokens": 5, "messages": ask()},
            404,
            "not_found_error",
        ),
    ]
    for sent_headers, body, status, kind in cases:
        r = httpx.post(url, json=body, headers=sent_headers)
        assert r.status_code == status, r.text
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == kind, r.text
    r = httpx.post(url, json={"model": "openai/plain", "messages": ask()}, headers=headers)
    assert "max_tokens" in r.json()["error"]["message"]
    r = httpx.get(f"{gateway.url}/api/anthropic/v1/nowhere", headers=headers)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_parameters_left_out_by_a_translation_are_named(
    claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    raw = claude.messages.with_raw_response.create(
        model="openai/plain", max_tokens=64, messages=ask(), extra_body={"top_k": 5}
    )
    assert raw.headers["x-muxgate-dropped-params"] == "top_k"
    raw = claude.messages.with_raw_response.create(
        model="anthropic/plain", max_tokens=64, messages=ask(), extra_body={"top_k": 5}
    )
    assert "x-muxgate-dropped-params" not in raw.headers, "nothing is dropped passing through"
    chat = gpt.chat.completions.with_raw_response.create(
        model="anthropic/plain", messages=ask(), seed=7, frequency_penalty=0.5
    )
    assert chat.headers["x-muxgate-dropped-params"] == "frequency_penalty, seed"


def test_messages_models_and_token_count(
    claude: anthropic.Anthropic, gateway: GatewayProcess
) -> None:
    ids = [m.id for m in claude.models.list()]
    assert "anthropic/plain" in ids and "openai/tools" in ids
    count = claude.messages.count_tokens(
        model="openai/plain", messages=ask("Hello there, how are you?")
    )
    assert count.input_tokens > 5
    longer = claude.messages.count_tokens(
        model="openai/plain", messages=ask("Hello there, how are you? " * 10), tools=[TOOL]
    )
    assert longer.input_tokens > count.input_tokens + 50


# --- OpenAI Chat Completions inbound -----------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_chat_plain_and_streamed_with_usage(
    gpt: openai.OpenAI, gateway: GatewayProcess, channel: str
) -> None:
    whole = gpt.chat.completions.create(model=f"{channel}/plain", messages=ask())
    assert whole.choices[0].message.content == SCRIPTS["plain"]["reply"]
    assert whole.choices[0].finish_reason == "stop"
    assert whole.model == f"{channel}/plain"
    stream = gpt.chat.completions.create(
        model=f"{channel}/plain",
        messages=ask(),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert whole.usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
    )
    event = gateway.usage_for(chunks[0].id)
    assert event.completion_tokens == usage.completion_tokens and event.stream


@pytest.mark.parametrize("channel", CHANNELS)
def test_chat_without_include_usage_has_no_usage_chunk(gpt: openai.OpenAI, channel: str) -> None:
    chunks = list(
        gpt.chat.completions.create(model=f"{channel}/plain", messages=ask(), stream=True)
    )
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_calls_arguments_parse_equal(
    gpt: openai.OpenAI, channel: str, stream: bool
) -> None:
    kwargs: dict[str, Any] = {
        "model": f"{channel}/two-tools",
        "messages": ask(),
        "tools": [OPENAI_TOOL],
    }
    calls: dict[int, dict[str, str]] = {}
    if stream:
        finish = None
        for chunk in gpt.chat.completions.create(stream=True, **kwargs):
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
    else:
        completion = gpt.chat.completions.create(**kwargs)
        finish = completion.choices[0].finish_reason
        for i, tool_call in enumerate(completion.choices[0].message.tool_calls or []):
            assert tool_call.type == "function"
            calls[i] = {
                "id": tool_call.id,
                "name": tool_call.function.name,
                "arguments": tool_call.function.arguments,
            }
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert [json.loads(calls[i]["arguments"]) for i in sorted(calls)] == [{"city": "Paris"}, {}]
    assert all(calls[i]["id"] for i in calls)


@pytest.mark.parametrize("channel", CHANNELS)
def test_chat_tool_result_turn(gpt: openai.OpenAI, channel: str) -> None:
    completion = gpt.chat.completions.create(
        model=f"{channel}/plain",
        tools=[OPENAI_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": json.dumps(WEATHER)},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "And this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                ],
            },
        ],
    )
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("channel", CHANNELS)
def test_chat_reasoning_and_max_tokens(gpt: openai.OpenAI, channel: str) -> None:
    completion = gpt.chat.completions.create(
        model=f"{channel}/thinking", messages=ask(), reasoning_effort="low"
    )
    message = completion.choices[0].message
    reasoning = getattr(message, "reasoning", None) or getattr(message, "reasoning_content", None)
    assert reasoning == SCRIPTS["thinking"]["thinking"]
    assert message.content == "Forty-two."
    cut = gpt.chat.completions.create(model=f"{channel}/plain", messages=ask(), max_tokens=3)
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens == 3


@pytest.mark.parametrize("channel", CHANNELS)
def test_chat_json_schema_is_accepted(gpt: openai.OpenAI, channel: str) -> None:
    completion = gpt.chat.completions.create(
        model=f"{channel}/plain",
        messages=ask(),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}},
        },
    )
    assert completion.choices[0].message.content


@pytest.mark.parametrize("channel", CHANNELS)
def test_chat_upstream_errors_before_and_after_the_first_byte(
    gpt: openai.OpenAI, gateway: GatewayProcess, channel: str
) -> None:
    with pytest.raises(openai.APIStatusError) as failed:
        gpt.chat.completions.create(model=f"{channel}/fail", messages=ask())
    assert failed.value.status_code == 502
    assert failed.value.response.json()["error"]["type"] == "no_provider_available"
    received: list[str] = []
    chunks = gpt.chat.completions.create(model=f"{channel}/midfail", messages=ask(), stream=True)
    with pytest.raises(openai.APIError):
        received.extend(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "".join(received)


# --- OpenAI Responses inbound ------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_responses_plain_and_streamed(
    gpt: openai.OpenAI, gateway: GatewayProcess, channel: str
) -> None:
    raw = gpt.responses.with_raw_response.create(
        model=f"{channel}/plain", input="Say hello", instructions="Be brief."
    )
    response = raw.parse()
    assert response.status == "completed"
    assert response.output_text == SCRIPTS["plain"]["reply"]
    assert response.id == raw.headers["x-muxgate-request-id"]
    assert response.usage is not None
    event = gateway.usage_for(response.id)
    assert event.prompt_tokens == response.usage.input_tokens > 0
    assert event.completion_tokens == response.usage.output_tokens > 0

    with gpt.responses.stream(model=f"{channel}/plain", input="Say hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) > 3
    assert "".join(deltas) == final.output_text == response.output_text
    assert final.usage is not None
    assert final.usage.output_tokens == response.usage.output_tokens


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("stream", [False, True])
def test_responses_function_calls(gpt: openai.OpenAI, channel: str, stream: bool) -> None:
    tool: Any = {"type": "function", **OPENAI_TOOL["function"]}  # type: ignore[dict-item]
    kwargs: dict[str, Any] = {"model": f"{channel}/two-tools", "input": "Go", "tools": [tool]}
    if stream:
        with gpt.responses.stream(**kwargs) as s:
            response = s.get_final_response()
    else:
        response = gpt.responses.create(**kwargs)
    calls = [item for item in response.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.arguments) for c in calls] == [{"city": "Paris"}, {}]
    assert response.output_text == "Checking both."


@pytest.mark.parametrize("channel", CHANNELS)
def test_responses_reasoning_tool_result_and_max_tokens(gpt: openai.OpenAI, channel: str) -> None:
    response = gpt.responses.create(
        model=f"{channel}/thinking", input="Six times seven?", reasoning={"effort": "low"}
    )
    reasoning = [item for item in response.output if item.type == "reasoning"]
    assert [s.text for s in reasoning[0].summary] == [SCRIPTS["thinking"]["thinking"]]
    assert response.output_text == "Forty-two."
    answered = gpt.responses.create(
        model=f"{channel}/plain",
        input=[
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": json.dumps(WEATHER),
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "18 degrees"},
        ],
    )
    assert answered.status == "completed"
    cut = gpt.responses.create(model=f"{channel}/plain", input="Hi", max_output_tokens=3)
    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize("channel", CHANNELS)
def test_responses_errors(gpt: openai.OpenAI, channel: str) -> None:
    with pytest.raises(openai.APIStatusError) as failed:
        gpt.responses.create(model=f"{channel}/fail", input="Hi")
    assert failed.value.status_code == 502
    events = list(gpt.responses.create(model=f"{channel}/midfail", input="Hi", stream=True))
    kinds = [e.type for e in events]
    assert "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    with pytest.raises(openai.BadRequestError) as refused:
        gpt.responses.create(model=f"{channel}/plain", input="Hi", previous_response_id="resp_1")
    assert "previous_response_id" in refused.value.response.json()["error"]["message"]


# --- Gemini / Vertex inbound ---------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_gemini_plain_and_streamed(
    gemini: genai.Client, gateway: GatewayProcess, channel: str
) -> None:
    whole = gemini.models.generate_content(model=f"{channel}/plain", contents="Say hello")
    assert whole.text == SCRIPTS["plain"]["reply"]
    assert whole.candidates and whole.candidates[0].finish_reason == genai_types.FinishReason.STOP
    usage = whole.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    event = gateway.usage_for(str(whole.response_id))
    assert (event.prompt_tokens, event.completion_tokens) == (
        usage.prompt_token_count,
        usage.candidates_token_count,
    )
    chunks = list(
        gemini.models.generate_content_stream(model=f"{channel}/plain", contents="Say hello")
    )
    assert len(chunks) > 3
    assert "".join(c.text or "" for c in chunks) == whole.text
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == usage.candidates_token_count


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("stream", [False, True])
def test_gemini_function_calls(gemini: genai.Client, channel: str, stream: bool) -> None:
    tool = genai_types.Tool(
        function_declarations=[
            genai_types.FunctionDeclaration(
                name="get_weather",
                description="Weather for a city",
                parameters_json_schema=TOOL["input_schema"],
            )
        ]
    )
    config = genai_types.GenerateContentConfig(tools=[tool])
    if stream:
        calls = [
            call
            for chunk in gemini.models.generate_content_stream(
                model=f"{channel}/tools", contents="Weather?", config=config
            )
            for call in chunk.function_calls or []
        ]
    else:
        response = gemini.models.generate_content(
            model=f"{channel}/tools", contents="Weather?", config=config
        )
        calls = response.function_calls or []
    assert [(c.name, c.args) for c in calls] == [("get_weather", WEATHER)]


@pytest.mark.parametrize("channel", CHANNELS)
def test_gemini_thinking_tool_results_and_max_tokens(gemini: genai.Client, channel: str) -> None:
    thinking = genai_types.GenerateContentConfig(
        thinking_config=genai_types.ThinkingConfig(thinking_budget=2048, include_thoughts=True)
    )
    response = gemini.models.generate_content(
        model=f"{channel}/thinking", contents="Six times seven?", config=thinking
    )
    assert response.candidates and response.candidates[0].content
    parts = response.candidates[0].content.parts or []
    assert [p.text for p in parts if p.thought] == [SCRIPTS["thinking"]["thinking"]]
    assert response.text == "Forty-two."
    answered = gemini.models.generate_content(
        model=f"{channel}/plain",
        contents=[
            genai_types.Content(role="user", parts=[genai_types.Part(text="Weather?")]),
            genai_types.Content(
                role="model",
                parts=[
                    genai_types.Part(
                        function_call=genai_types.FunctionCall(name="get_weather", args=WEATHER)
                    )
                ],
            ),
            genai_types.Content(
                role="user",
                parts=[
                    genai_types.Part(
                        function_response=genai_types.FunctionResponse(
                            name="get_weather", response={"output": "18 degrees"}
                        )
                    ),
                    genai_types.Part(
                        inline_data=genai_types.Blob(
                            mime_type="image/png", data=__import__("base64").b64decode(PIXEL)
                        )
                    ),
                ],
            ),
        ],
    )
    assert answered.text
    cut = gemini.models.generate_content(
        model=f"{channel}/plain",
        contents="Hi",
        config=genai_types.GenerateContentConfig(max_output_tokens=3),
    )
    assert cut.candidates and cut.candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS


@pytest.mark.parametrize("channel", CHANNELS)
def test_gemini_errors_and_json_schema(gemini: genai.Client, channel: str) -> None:
    with pytest.raises(genai_errors.APIError) as failed:
        gemini.models.generate_content(model=f"{channel}/fail", contents="Hi")
    assert failed.value.code == 502
    with pytest.raises(genai_errors.APIError):
        for _ in gemini.models.generate_content_stream(model=f"{channel}/midfail", contents="Hi"):
            pass
    shaped = gemini.models.generate_content(
        model=f"{channel}/plain",
        contents="Hi",
        config=genai_types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema={"type": "object"}
        ),
    )
    assert shaped.text


def test_gemini_json_array_streams_and_google_errors(gateway: GatewayProcess) -> None:
    url = f"{gateway.url}/api/vertex-ai/v1/publishers/openai/models/plain:streamGenerateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    r = httpx.post(url, json=body, headers={"x-goog-api-key": KEY})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    pieces = r.json()
    assert isinstance(pieces, list) and len(pieces) > 3
    text = "".join(p["candidates"][0]["content"]["parts"][0].get("text", "") for p in pieces)
    assert text == SCRIPTS["plain"]["reply"]
    assert pieces[-1]["candidates"][0]["finishReason"] == "STOP"
    r = httpx.post(url, json=body, headers={"x-goog-api-key": "wrong"})
    assert r.status_code == 401
    assert r.json()["error"]["status"] == "UNAUTHENTICATED" and r.json()["error"]["code"] == 401
    r = httpx.post(
        f"{gateway.url}/api/vertex-ai/v1/publishers/no/models/such:generateContent?key={KEY}",
        json=body,
    )
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    r = httpx.post(f"{gateway.url}/api/vertex-ai/v1/nowhere", json=body)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    listed = httpx.get(
        f"{gateway.url}/api/vertex-ai/v1beta/models", headers={"authorization": f"Bearer {KEY}"}
    ).json()
    assert "models/gemini/plain" in [m["name"] for m in listed["models"]]


def test_large_prompts_are_counted_exactly_off_the_io_thread(
    gpt: openai.OpenAI, claude: anthropic.Anthropic, gateway: GatewayProcess
) -> None:
    # Well over the size counted in place: the count runs on the blocking pool, and still
    # equals the provider's (the mock counts the Chat Completions framing with o200k).
    text = "The quick brown fox jumps over the lazy dog, again and again. " * 5_000
    chat = gpt.chat.completions.create(model="openai/plain", messages=ask(text))
    event = gateway.usage_for(chat.id)
    assert chat.usage is not None and chat.usage.prompt_tokens > 50_000
    assert event.local_prompt_tokens == event.prompt_tokens == chat.usage.prompt_tokens
    with claude.messages.stream(model="openai/plain", max_tokens=64, messages=ask(text)) as s:
        message = s.get_final_message()
    event = gateway.usage_for(message.id)
    assert event.local_prompt_tokens == event.prompt_tokens == message.usage.input_tokens
    # count_tokens counts a body this large on a thread, to the same number.
    count = claude.messages.count_tokens(model="openai/plain", messages=ask(text))
    assert count.input_tokens == event.local_prompt_tokens
