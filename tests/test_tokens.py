"""Token counting through the Python facade: the same exact counts the engine meters with."""

from __future__ import annotations

import json

import pytest

import muxgate


def test_known_vectors() -> None:
    # tiktoken: "hello world" is [24912, 2375] in o200k_base and [15339, 1917] in cl100k_base.
    assert muxgate.count_tokens("hello world") == 2
    assert muxgate.count_tokens("hello world", "cl100k_base") == 2
    assert muxgate.count_tokens("tiktoken is great!", "cl100k_base") == 6
    assert muxgate.count_tokens("") == 0


def test_chat_framing_matches_openai_cookbook() -> None:
    messages = [
        {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
        {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
        {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
    ]  # fmt: skip
    payload = json.dumps(messages).encode()
    assert muxgate.count_chat_tokens(payload, "cl100k_base") == 129
    assert muxgate.count_chat_tokens(payload, "o200k_base") == 124


def test_encoding_for_model_and_errors() -> None:
    assert muxgate.encoding_for_model("openai/gpt-4o-mini") == "o200k_base"
    assert muxgate.encoding_for_model("gpt-4") == "cl100k_base"
    with pytest.raises(ValueError, match="unknown encoding"):
        muxgate.count_tokens("x", "p50k_base")
    with pytest.raises(ValueError, match="JSON array"):
        muxgate.count_chat_tokens(b"{}")
