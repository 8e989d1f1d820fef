"""The mock provider seen through the official `openai` SDK: the wire format must be exact
enough for the SDK, and every scripted failure must look to it like the real thing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgspec
import openai
import pytest
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageParam,
    ChatCompletionStreamOptionsParam,
)

from muxgate.mock import (
    MockConfig,
    MockProvider,
    MockScript,
    MockStats,
    encode_config,
    load_config,
    read_stats,
    start,
)
from waiting import HANG

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hi"},
]

SCRIPTS: dict[str, MockScript] = {
    "fixed": MockScript(reply="one two three four", chunks=2),
    "fail-500": MockScript(error_every=1),
    "rate-429": MockScript(error_every=1, error_status=429, retry_after_s=7),
    "hang": MockScript(hang=True),
    "cut": MockScript(reply="a b c d e f", truncate_after=3),
    "cut-clean": MockScript(reply="a b c d e f", truncate_after=3, truncate_clean=True),
    "malformed": MockScript(reply="a b c d", malformed_after=2),
    "paced": MockScript(reply=" ".join(f"w{i}" for i in range(50)), tokens_per_second=5),
    "slow-json": MockScript(ttft_ms=2000),
    "secured": MockScript(api_key="sk-upstream"),
    "filtered": MockScript(reply="nope", finish_reason="content_filter"),
}


@pytest.fixture(scope="module")
def provider() -> Iterator[MockProvider]:
    with start(MockConfig(models=SCRIPTS)) as mock:
        yield mock


@pytest.fixture
def client(provider: MockProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=provider.base_url, api_key="sk-test", max_retries=0)


def wait_for(provider: MockProvider, check: Callable[[MockStats], bool]) -> MockStats:
    deadline = time.monotonic() + HANG
    while True:
        stats = read_stats(provider)
        if check(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.01)


def stream(client: openai.OpenAI, model: str, include_usage: bool) -> list[ChatCompletionChunk]:
    options: ChatCompletionStreamOptionsParam | None = (
        {"include_usage": True} if include_usage else None
    )
    chunks = client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options=options
    )
    return list(chunks)


def test_json_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello! You said: Say hi."
    assert choice.message.refusal is None
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_stream_without_usage(client: openai.OpenAI) -> None:
    chunks = stream(client, "fixed", include_usage=False)
    assert len(chunks) == 4  # role, 2 content chunks, finish
    assert len({c.id for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.model == "fixed" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in chunks[1:3]] == ["one two", " three four"]
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, "stop"]
    assert chunks[3].choices[0].delta.content is None
    assert all(c.usage is None and "usage" not in c.model_fields_set for c in chunks)


def test_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = stream(client, "fixed", include_usage=True)
    assert len(chunks) == 5
    *body, last = chunks
    assert all("usage" in c.model_fields_set and c.usage is None for c in body)
    assert last.choices == []
    assert last.usage is not None
    plain = openai.OpenAI(base_url=str(client.base_url), api_key="x", max_retries=0)
    json_usage = plain.chat.completions.create(model="fixed", messages=MESSAGES).usage
    assert json_usage is not None
    assert last.usage.prompt_tokens == json_usage.prompt_tokens
    assert last.usage.completion_tokens == json_usage.completion_tokens


def test_max_tokens_and_finish_reason_override(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=3
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3
    assert "Hello! You said: Say hi.".startswith(completion.choices[0].message.content or "x")
    filtered = client.chat.completions.create(model="filtered", messages=MESSAGES)
    assert filtered.choices[0].finish_reason == "content_filter"


def test_injected_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as server_error:
        client.chat.completions.create(model="fail-500", messages=MESSAGES)
    assert server_error.value.status_code == 500
    assert server_error.value.type == "server_error"
    with pytest.raises(openai.RateLimitError) as rate_limited:
        client.chat.completions.create(model="rate-429", messages=MESSAGES, stream=True)
    assert rate_limited.value.response.headers["retry-after"] == "7"
    assert rate_limited.value.code == "rate_limit_exceeded"


def test_api_key_and_strict_models(provider: MockProvider) -> None:
    wrong = openai.OpenAI(base_url=provider.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        wrong.chat.completions.create(model="secured", messages=MESSAGES)
    assert denied.value.code == "invalid_api_key"
    right = openai.OpenAI(base_url=provider.base_url, api_key="sk-upstream", max_retries=0)
    assert right.chat.completions.create(model="secured", messages=MESSAGES).choices
    with start(MockConfig(strict=True, models={"known": MockScript()})) as strict:
        client = openai.OpenAI(base_url=strict.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="unknown", messages=MESSAGES)
        assert missing.value.code == "model_not_found"
        assert [m.id for m in client.models.list()] == ["known"]


def test_invalid_json_is_a_400(provider: MockProvider) -> None:
    response = httpx.post(f"{provider.base_url}/chat/completions", content=b"{nope")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] is None
    assert error["code"] is None


def test_truncated_stream(client: openai.OpenAI, provider: MockProvider) -> None:
    before = read_stats(provider)
    seen: list[str] = []
    # The aborted chunked body is an httpx protocol error, wrapped by the SDK mid-iteration.
    chunks = client.chat.completions.create(model="cut", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError) as aborted:
        seen.extend(c.choices[0].delta.content or "" for c in chunks)
    assert type(aborted.value.__cause__).__name__ == "RemoteProtocolError"
    assert "".join(seen) == "a b c"
    # A clean end without [DONE] is silently accepted by the SDK: only a missing finish shows it.
    clean = stream(client, "cut-clean", include_usage=True)
    assert len(clean) == 4
    assert all(c.choices[0].finish_reason is None for c in clean)
    stats = wait_for(provider, lambda s: s.streams_truncated == before.streams_truncated + 2)
    assert stats.streams_truncated == before.streams_truncated + 2
    assert stats.client_disconnects == before.client_disconnects


def test_truncated_json(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="cut", messages=MESSAGES)


def test_malformed_chunk(client: openai.OpenAI) -> None:
    chunks = client.chat.completions.create(model="malformed", messages=MESSAGES, stream=True)
    seen = [c.choices[0].delta.content for c in [next(chunks), next(chunks), next(chunks)]]
    assert seen == ["", "a", " b"]
    with pytest.raises(json.JSONDecodeError):
        next(chunks)


def test_hang_times_out_and_counts_disconnect(provider: MockProvider) -> None:
    before = read_stats(provider).client_disconnects
    client = openai.OpenAI(base_url=provider.base_url, api_key="x", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="hang", messages=MESSAGES)
    stats = wait_for(provider, lambda s: s.client_disconnects > before)
    assert stats.client_disconnects == before + 1


def test_json_delay_times_out(provider: MockProvider) -> None:
    client = openai.OpenAI(base_url=provider.base_url, api_key="x", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="slow-json", messages=MESSAGES)


def test_closing_a_paced_stream_counts_disconnect(
    client: openai.OpenAI, provider: MockProvider
) -> None:
    before = read_stats(provider)
    chunks = client.chat.completions.create(model="paced", messages=MESSAGES, stream=True)
    assert next(chunks).choices[0].delta.role == "assistant"
    assert next(chunks).choices[0].delta.content == "w0"
    chunks.close()
    stats = wait_for(provider, lambda s: s.client_disconnects > before.client_disconnects)
    assert stats.client_disconnects == before.client_disconnects + 1
    assert stats.streams_started == before.streams_started + 1
    assert stats.streams_completed == before.streams_completed
    assert stats.in_flight == 0


def test_reload_flips_a_model() -> None:
    with start(MockConfig(models={"m": MockScript()})) as mock:
        client = openai.OpenAI(base_url=mock.base_url, api_key="x", max_retries=0)
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
        mock.set_config(encode_config(MockConfig(models={"m": MockScript(error_rate=1.0)})))
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert msgspec.json.decode(mock.config(), type=MockConfig).models["m"].error_rate == 1.0
        with pytest.raises(ValueError, match="error_rate"):
            mock.set_config('{"default": {"error_rate": 2}}')
        stats = read_stats(mock)
        assert (stats.requests, stats.models, stats.errors_injected) == (2, {"m": 2}, 1)


def test_stop_is_idempotent() -> None:
    mock = start()
    assert mock.running
    assert mock.port > 0
    mock.stop()
    mock.stop()
    assert not mock.running
    with pytest.raises(RuntimeError):
        mock.stats()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{mock.base_url}/models")


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        MockProvider('{"default": {"bogus": 1}}')
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"default": {"error_rate": 2}}, MockConfig)


def test_load_config_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "mock.toml"
    path.write_text(
        'strict = true\n[default]\nttft_ms = 5\n[models."gpt-4o"]\nreply = "hi"\n'
        "tokens_per_second = 50\nerror_every = 3\n"
    )
    config = load_config(path)
    assert config.strict
    assert config.default.ttft_ms == 5
    assert config.models["gpt-4o"] == MockScript(reply="hi", tokens_per_second=50, error_every=3)
    with start(config) as mock:
        assert msgspec.json.decode(mock.config(), type=MockConfig) == config


def test_run_serves_until_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "mock.toml"
    path.write_text('[default]\nreply = "from run"\n')
    with start() as probe:
        port = probe.port  # a port that was free a moment ago
    code = f"from muxgate.mock import run; run({str(path)!r}, port={port})"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x")
        deadline = time.monotonic() + HANG
        while True:
            try:
                completion = client.with_options(max_retries=0).chat.completions.create(
                    model="any", messages=MESSAGES
                )
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline
                assert proc.poll() is None
                time.sleep(0.05)
        assert completion.choices[0].message.content == "from run"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert proc.stderr is not None
        assert f"listening on http://127.0.0.1:{port}/v1" in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
