"""The hallucination judge in pieces: the grading prompt built from each surface's request, the
verdict read from the judge's reply, the credit a verdict earns, and the job's waiting rules
over a real store (no key, an unreachable gateway, cases due or not)."""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

import factories
from muxgate.control.insurance.grading import (
    MAX_CONVERSATION_CHARS,
    MAX_REASON_CHARS,
    SYSTEM_PROMPT,
    JudgeVerdict,
    UnusableAnswer,
    grading_request,
    parse_reply,
    render_answer,
    render_conversation,
    turns,
)
from muxgate.control.insurance.judge import Judge, JudgeSettings, backoff, judge_credit
from muxgate.store import Store, accounts, cases, ledger, policies, settings, usage
from muxgate.wire import Answer, Case

T0 = datetime(2030, 1, 1, tzinfo=UTC)

# --- the prompt ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("surface", "request_body", "expected"),
    [
        (
            "chat",
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}
                        ],
                    },
                    {"role": "tool", "content": "-3 C, snow"},
                ]
            },
            [
                ("system", "Be brief."),
                ("user", "Weather in Oslo?"),
                ("assistant", '[calls tool weather({"city":"Oslo"})]'),
                ("tool", "-3 C, snow"),
            ],
        ),
        (
            "messages",
            {
                "system": [{"type": "text", "text": "Be brief."}],
                "messages": [
                    {"role": "user", "content": "Weather in Oslo?"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "name": "weather", "input": {"city": "Oslo"}}
                        ],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "content": "-3 C, snow"}],
                    },
                ],
            },
            [
                ("system", "Be brief."),
                ("user", "Weather in Oslo?"),
                ("assistant", '[calls tool weather({"city": "Oslo"})]'),
                ("user", "[tool result] -3 C, snow"),
            ],
        ),
        (
            "responses",
            {
                "instructions": "Be brief.",
                "input": [
                    {"role": "user", "content": [{"type": "input_text", "text": "Oslo?"}]},
                    {"type": "function_call", "name": "weather", "arguments": "{}"},
                    {"type": "function_call_output", "output": "-3 C"},
                ],
            },
            [
                ("system", "Be brief."),
                ("user", "Oslo?"),
                ("assistant", "[calls tool weather({})]"),
                ("tool", "[tool result] -3 C"),
            ],
        ),
        ("responses", {"input": "Oslo?"}, [("user", "Oslo?")]),
        (
            "gemini",
            {
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "Oslo?"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {}}}]},
                    {
                        "role": "user",
                        "parts": [{"functionResponse": {"name": "w", "response": {"t": -3}}}],
                    },
                ],
            },
            [
                ("system", "Be brief."),
                ("user", "Oslo?"),
                ("assistant", "[calls tool w({})]"),
                ("user", '[tool result] {"t": -3}'),
            ],
        ),
    ],
)
def test_each_surface_is_read_as_a_conversation(
    surface: str, request_body: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert turns(surface, request_body) == expected


def test_a_request_no_surface_describes_is_shown_as_it_is() -> None:
    assert render_conversation("chat", {"prompt": "Oslo?"}) == '{"prompt": "Oslo?"}'
    assert render_conversation("gemini", ["odd"]) == '["odd"]'


def test_a_long_conversation_keeps_its_end() -> None:
    early = "early " * 5000
    body = {"messages": [{"role": "user", "content": early}, {"role": "user", "content": "END"}]}
    text = render_conversation("chat", body)
    assert text.startswith("[earlier conversation cut]\n")
    assert text.endswith("[user]\nEND")
    assert len(text) <= MAX_CONVERSATION_CHARS + 30


def test_the_answer_is_its_text_and_tool_calls_without_reasoning() -> None:
    answer = {
        "text": "It snows.",
        "reasoning": "The user wants weather; I must not mention this.",
        "tool_calls": [{"name": "weather", "arguments": '{"city": "Oslo"}'}],
    }
    assert render_answer(answer) == 'It snows.\n[calls tool weather({"city": "Oslo"})]'
    assert render_answer({"text": "", "tool_calls": []}) == "[empty answer]"


def test_the_grading_request_asks_for_a_json_verdict_deterministically() -> None:
    body = grading_request(
        "openai/gpt-4o",
        "chat",
        {"messages": [{"role": "user", "content": "Who built the Eiffel Tower? [EMAIL]"}]},
        {"text": "Gustave Flaubert, in 1925."},
    )
    assert body["model"] == "openai/gpt-4o"
    assert body["response_format"] == {"type": "json_object"}
    assert body["temperature"] == 0
    assert body["stream"] is False
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert '"hallucination": true or false' in SYSTEM_PROMPT
    assert "[EMAIL]" in SYSTEM_PROMPT  # redaction placeholders are explained to the judge
    assert user["role"] == "user"
    assert (
        "<conversation>\n[user]\nWho built the Eiffel Tower? [EMAIL]\n</conversation>"
        in user["content"]
    )
    assert "<answer>\nGustave Flaubert, in 1925.\n</answer>" in user["content"]


# --- the verdict ---------------------------------------------------------------------------


def reply(content: Any) -> bytes:
    return json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": content}}]}
    ).encode()


@pytest.mark.parametrize(
    ("content", "verdict"),
    [
        ('{"hallucination": true, "reason": "1889, not 1925."}', (True, "1889, not 1925.")),
        ('{"hallucination": false, "reason": " Accurate. "}', (False, "Accurate.")),
        ('{"hallucination": false}', (False, "")),
        ('```json\n{"hallucination": true, "reason": "x"}\n```', (True, "x")),
    ],
)
def test_verdicts_are_read_from_the_judges_json(content: str, verdict: tuple[bool, str]) -> None:
    assert parse_reply(reply(content)) == JudgeVerdict(hallucination=verdict[0], reason=verdict[1])


def test_a_long_reason_is_cut() -> None:
    parsed = parse_reply(reply(json.dumps({"hallucination": True, "reason": "x" * 5000})))
    assert len(parsed.reason) == MAX_REASON_CHARS and parsed.reason.endswith("…")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>Bad gateway</html>", "the response is not JSON"),
        (b'{"error": {"message": "nope"}}', "no choices[0].message.content"),
        (b'{"choices": []}', "no choices[0].message.content"),
        (reply(None), "answered nothing"),
        (reply("  "), "answered nothing"),
        (reply("Looks fine to me!"), "not JSON: 'Looks fine to me!'"),
        (reply("[true]"), "not a JSON object"),
        (reply('{"reason": "fine"}'), "no boolean `hallucination`"),
        (reply('{"hallucination": "true"}'), "no boolean `hallucination`"),
    ],
)
def test_unusable_answers_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(UnusableAnswer, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_reply(body)


# --- the credit ----------------------------------------------------------------------------


def rule(**changes: Any) -> policies.InsuranceRuleRecord:
    values: dict[str, Any] = {
        "id": "judged",
        "description": "",
        "trigger": "hallucination",
        "params": {"sample_rate": 1.0, "judge_model": "a/judge"},
        "models": [],
        "channels": [],
        "accounts": [],
        "payout_percent": 40,
        "cap_per_request_nano": None,
        "cap_per_day_nano": None,
        "min_cost_nano": 0,
        "enabled": True,
        "created_at": T0,
    }
    values.update(changes)
    return policies.InsuranceRuleRecord(**values)


def test_the_credit_is_computed_as_the_engine_computes_it() -> None:
    assert judge_credit(rule(), 1_000, 1_000) == 400
    assert judge_credit(rule(payout_percent=33), 1_001, 1_001) == 330  # rounded down
    assert judge_credit(rule(cap_per_request_nano=250), 1_000, 1_000) == 250
    assert judge_credit(rule(min_cost_nano=1_001), 1_000, 1_000) == 0
    assert judge_credit(rule(min_cost_nano=1_000), 1_000, 1_000) == 400
    assert judge_credit(rule(), 0, 0) == 0  # a free request is never covered
    # Never more than what the request's other claims left of its cost.
    assert judge_credit(rule(payout_percent=100), 1_000, 300) == 300
    assert judge_credit(rule(), 1_000, 0) == 0


def test_settings_come_from_the_environment() -> None:
    found = JudgeSettings.from_env(
        {
            "MUXGATE_JUDGE_URL": "http://127.0.0.1:8080/",
            "MUXGATE_JUDGE_KEY": "sk-judge",
            "MUXGATE_JUDGE_INTERVAL": "0.5",
        }
    )
    assert (found.url, found.key, found.interval, found.retry) == (
        "http://127.0.0.1:8080",
        "sk-judge",
        0.5,
        60.0,
    )
    assert JudgeSettings.from_env({}) == JudgeSettings()
    with pytest.raises(ValueError, match="MUXGATE_JUDGE_RETRY"):
        JudgeSettings.from_env({"MUXGATE_JUDGE_RETRY": "0"})
    backoffs = [backoff(JudgeSettings(retry=60), n) for n in range(1, 5)]
    assert backoffs == [60, 240, 960, 3840]


# --- the job over a store ------------------------------------------------------------------


async def sampled(store: Store, request_id: str, created: datetime, rules: list[str]) -> None:
    request = {"messages": [{"role": "user", "content": "Who built the Eiffel Tower?"}]}
    event = factories.usage_event(
        request_id,
        created_ms=int(created.timestamp() * 1000),
        account_id="keeps",
        case=Case(
            surface="chat",
            request=msgspec.Raw(msgspec.json.encode(request)),
            answer=Answer(text="Flaubert."),
            judge_rules=rules,
        ),
    )
    await usage.record_usage(store, [event])


@pytest.fixture
async def waiting(store: Store) -> Store:
    await settings.update_settings(store, trial_credit_nano=0)
    await accounts.create_account(store, "keeps")
    await ledger.add_entry(store, "keeps", "top_up", 10**9)
    await accounts.update_account(store, "keeps", retain_content=True)
    await sampled(store, "later", T0 + timedelta(seconds=5), ["judged"])
    await sampled(store, "first", T0, ["judged"])
    await sampled(store, "unsampled", T0, [])
    return store


async def nothing() -> None:
    return None


async def test_only_sampled_cases_are_due_oldest_first(waiting: Store) -> None:
    due = await cases.due_cases(waiting, T0 + timedelta(minutes=1), limit=10)
    assert [c.request_id for c in due] == ["first", "later"]
    assert [c.request_id for c in await cases.due_cases(waiting, T0, limit=10)] == ["first"]
    assert len(await cases.due_cases(waiting, T0 + timedelta(minutes=1), limit=1)) == 1


async def test_without_a_key_cases_wait_and_the_operator_is_told_once(
    waiting: Store, caplog: pytest.LogCaptureFixture
) -> None:
    judge = Judge(waiting, JudgeSettings(url="http://127.0.0.1:1"), on_unblocked=nothing)
    now = T0 + timedelta(minutes=1)
    with caplog.at_level(logging.WARNING, logger="muxgate.control.judge"):
        assert await judge.run_once(now) == 0
        assert await judge.run_once(now) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "MUXGATE_JUDGE_KEY" in warnings[0]
    assert [c.request_id for c in await cases.due_cases(waiting, now, 10)] == ["first", "later"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_an_unreachable_gateway_is_no_attempt_of_the_judge(waiting: Store) -> None:
    await policies.create_insurance_rule(
        waiting,
        "judged",
        trigger="hallucination",
        params={"sample_rate": 1.0, "judge_model": "a/judge"},
    )
    settings_ = JudgeSettings(url=f"http://127.0.0.1:{closed_port()}", key="sk-judge", timeout=5)
    judge = Judge(waiting, settings_, on_unblocked=nothing)
    now = T0 + timedelta(minutes=1)
    for _ in range(settings_.max_attempts + 1):
        assert await judge.run_once(now) == 0
    still = await cases.due_cases(waiting, now, 10)
    assert [(c.request_id, c.judge_attempts, c.judged_at) for c in still] == [
        ("first", 0, None),
        ("later", 0, None),
    ]


async def test_a_case_that_cannot_be_handled_does_not_hold_up_the_queue(
    waiting: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await policies.create_insurance_rule(
        waiting,
        "judged",
        trigger="hallucination",
        params={"sample_rate": 1.0, "judge_model": "a/judge"},
    )
    # A case whose stored outcome the judge cannot read.
    await cases.defer_judgement(
        waiting, "first", outcome=[{"unreadable": True}], attempts=0, next_at=T0
    )
    found = JudgeSettings(url=f"http://127.0.0.1:{closed_port()}", key="sk-judge", retry=1)
    judge = Judge(waiting, found, on_unblocked=nothing)
    now = T0 + timedelta(minutes=1)
    with caplog.at_level(logging.ERROR, logger="muxgate.control.judge"):
        assert await judge.run_once(now) == 0
    assert "case first failed" in caplog.text
    due = await cases.due_cases(waiting, now + timedelta(hours=1), 10)
    assert [(c.request_id, c.judge_attempts) for c in due] == [("first", 1), ("later", 0)]
    assert [c.request_id for c in await cases.due_cases(waiting, now, 10)] == ["later"]
    for hour in range(2, 2 + found.max_attempts):
        await judge.run_once(now + timedelta(hours=hour))
    (given_up,) = [c async for c in cases.iter_cases(waiting, "keeps") if c.request_id == "first"]
    assert given_up.judged_at is not None
    (outcome,) = given_up.judge_outcome or []
    assert outcome["rule_id"] == "judged"
    assert outcome["error"].startswith(f"given up after {found.max_attempts} attempts: KeyError")
    # The other case still waits for a reachable gateway, no attempt counted.
    (later,) = await cases.due_cases(waiting, now + timedelta(days=1), 10)
    assert (later.request_id, later.judge_attempts) == ("later", 0)
