"""What the hallucination judge is asked and how its reply is read: a grading prompt built from
a redacted case (the conversation as any of the four surfaces sent it, and the answer the
client received), and the verdict parsed from the judge model's JSON reply."""

from __future__ import annotations

import json
from typing import Any

import msgspec

# Enough context for a judge to check facts against, without sending a whole long agent
# transcript; the end of the conversation is what the answer responds to, so it is kept.
MAX_CONVERSATION_CHARS = 24_000
MAX_ANSWER_CHARS = 12_000
MAX_REASON_CHARS = 500

SYSTEM_PROMPT = """\
You check answers given by an AI assistant for hallucinations. A hallucination is a statement \
presented as fact that is fabricated or false: invented facts, people, events, quotations, \
citations, links, numbers, APIs or functions, or claims that contradict the conversation or \
well-established knowledge.

These are not hallucinations: opinions, refusals, saying that something is unknown, fiction or \
hypotheticals the user asked for, and facts the conversation itself supplies. Some content was \
replaced before you see it ([EMAIL], [PHONE], [CARD], [IP], [SECRET], [BINARY]); such \
placeholders are never a hallucination.

Grade only the answer, not the user's messages. Reply with one JSON object and nothing else:
{"hallucination": true or false, "reason": "one short sentence naming the false statement, \
or why the answer is sound"}"""


class JudgeVerdict(msgspec.Struct, frozen=True, kw_only=True):
    hallucination: bool
    reason: str


class UnusableAnswer(Exception):
    """The judge gave no verdict (an error, a reply that is not the JSON asked for)."""


def _call(name: Any, arguments: Any) -> str:
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return f"[calls tool {name}({arguments})]"


def text_of(content: Any) -> str:
    """The readable text of a message's content in any protocol: a string, or parts and blocks
    holding text, tool calls and tool results."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(text for part in content if (text := text_of(part)))
    if not isinstance(content, dict):
        return ""
    kind = content.get("type")
    if kind == "tool_use":  # Messages
        return _call(content.get("name"), content.get("input", {}))
    if kind == "function_call":  # Responses
        return _call(content.get("name"), content.get("arguments", ""))
    if kind == "function_call_output":
        return f"[tool result] {text_of(content.get('output'))}"
    if "functionCall" in content:  # Gemini
        call = content["functionCall"] or {}
        return _call(call.get("name"), call.get("args", {}))
    if "functionResponse" in content:
        response = (content["functionResponse"] or {}).get("response")
        return f"[tool result] {json.dumps(response, ensure_ascii=False)}"
    if kind == "tool_result":
        return f"[tool result] {text_of(content.get('content'))}"
    for key in ("text", "content", "parts"):
        if key in content:
            return text_of(content[key])
    return ""


def _chat_turn(message: Any) -> tuple[str, str]:
    if not isinstance(message, dict):
        return ("user", text_of(message))
    text = text_of(message.get("content"))
    calls = [
        _call(c.get("function", {}).get("name"), c.get("function", {}).get("arguments", ""))
        for c in message.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    return (str(message.get("role", "user")), "\n".join(t for t in (text, *calls) if t))


def turns(surface: str, request: Any) -> list[tuple[str, str]]:
    """The conversation of a request body as (role, text) pairs, in order."""
    if not isinstance(request, dict):
        return []
    found: list[tuple[str, str]] = []
    if surface == "chat":
        found = [_chat_turn(m) for m in request.get("messages") or []]
    elif surface == "messages":
        if system := text_of(request.get("system")):
            found.append(("system", system))
        found += [_chat_turn(m) for m in request.get("messages") or []]
    elif surface == "responses":
        if instructions := text_of(request.get("instructions")):
            found.append(("system", instructions))
        items = request.get("input")
        if isinstance(items, str):
            found.append(("user", items))
        for item in items if isinstance(items, list) else []:
            role = item.get("role") if isinstance(item, dict) else None
            kind = item.get("type") if isinstance(item, dict) else None
            name = "tool" if kind == "function_call_output" else "assistant"
            found.append((str(role) if role else name, text_of(item)))
    elif surface == "gemini":
        instruction = request.get("systemInstruction") or request.get("system_instruction")
        if system := text_of(instruction):
            found.append(("system", system))
        for content in request.get("contents") or []:
            role = content.get("role", "user") if isinstance(content, dict) else "user"
            found.append(("assistant" if role == "model" else str(role), text_of(content)))
    return [(role, text) for role, text in found if text]


def render_conversation(surface: str, request: Any) -> str:
    found = turns(surface, request)
    if found:
        text = "\n\n".join(f"[{role}]\n{body}" for role, body in found)
    else:
        # A body the surfaces above do not describe: the judge still sees what was asked.
        text = json.dumps(request, ensure_ascii=False)
    if len(text) > MAX_CONVERSATION_CHARS:
        text = "[earlier conversation cut]\n" + text[-MAX_CONVERSATION_CHARS:]
    return text


def render_answer(answer: dict[str, Any]) -> str:
    """The answer as the client received it: its text and tool calls (not the reasoning,
    which the client is not told as fact)."""
    parts = [str(answer.get("text") or "")]
    parts += [
        _call(c.get("name"), c.get("arguments", ""))
        for c in answer.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    text = "\n".join(p for p in parts if p) or "[empty answer]"
    if len(text) > MAX_ANSWER_CHARS:
        text = text[:MAX_ANSWER_CHARS] + "\n[answer cut]"
    return text


def grading_messages(surface: str, request: Any, answer: dict[str, Any]) -> list[dict[str, str]]:
    user = (
        "<conversation>\n"
        f"{render_conversation(surface, request)}\n"
        "</conversation>\n\n"
        "<answer>\n"
        f"{render_answer(answer)}\n"
        "</answer>\n\n"
        "Does the answer state fabricated or false facts? Reply with the JSON object only."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def grading_request(
    judge_model: str, surface: str, request: Any, answer: dict[str, Any]
) -> dict[str, Any]:
    """The Chat Completions body that asks `judge_model` to grade one case."""
    return {
        "model": judge_model,
        "messages": grading_messages(surface, request, answer),
        "response_format": {"type": "json_object"},
        "temperature": 0,
        "stream": False,
    }


def _strip_fence(text: str) -> str:
    # Models asked for bare JSON still sometimes wrap it in a Markdown code fence.
    text = text.strip()
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        text = text[3:-3]
        if text.startswith("json"):
            text = text[4:]
    return text.strip()


def parse_reply(body: bytes) -> JudgeVerdict:
    """The verdict in a Chat Completions response body; `UnusableAnswer` says what is wrong."""
    try:
        response = json.loads(body)
    except ValueError as exc:
        raise UnusableAnswer("the response is not JSON") from exc
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise UnusableAnswer("the response has no choices[0].message.content") from exc
    if not isinstance(content, str) or not content.strip():
        raise UnusableAnswer("the judge answered nothing")
    try:
        verdict = json.loads(_strip_fence(content))
    except ValueError as exc:
        raise UnusableAnswer(f"the judge's answer is not JSON: {content[:120]!r}") from exc
    if not isinstance(verdict, dict):
        raise UnusableAnswer(f"the judge's answer is not a JSON object: {content[:120]!r}")
    flag = verdict.get("hallucination")
    if not isinstance(flag, bool):
        raise UnusableAnswer("the judge's answer has no boolean `hallucination`")
    reason = verdict.get("reason")
    reason = reason.strip() if isinstance(reason, str) else ""
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return JudgeVerdict(hallucination=flag, reason=reason)
