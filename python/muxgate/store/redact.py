"""Redaction of secrets and personal data from insurance cases before they are stored.

A case keeps the content of a request for the account's own use; what it must not keep is what
would hurt if that export leaked: credentials, e-mail addresses, phone and card numbers, IP
addresses. Each is replaced by a typed placeholder (`[SECRET]`, `[EMAIL]`, `[PHONE]`, `[CARD]`,
`[IP]`), so the case still reads naturally. Lives in the store because the store is what must
never write content unredacted.

Choices that trade recall for fewer false positives, on purpose:
- A phone number needs a leading `+` or national separators (`(555) 123-4567`, `555-123-4567`,
  `06 12 34 56 78`); a bare run of digits is a count or an id, not a phone number. Dates
  (`2024-01-15`, `05.01.2024`) are kept.
- A card number is 13 to 19 digits, contiguous or grouped 4-4-4-4(-3) / 4-6-5 with spaces or
  dashes, starting like a card (2 to 6) and passing the Luhn check: a millisecond timestamp is not.
- A dotted quad with every part <= 255 is an IPv4 address, so a bare four-part version `1.2.3.4`
  is redacted too (they cannot be told apart); `v1.2.3.4` and three-part versions are kept.
- Long base64 payloads (images, documents) cannot be scanned, so they are replaced whole
  (`[BINARY]`); git hashes and other bare hex strings are kept unless named as a secret
  (`token=…`, `"api_key": "…"`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

SECRET = "[SECRET]"
EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"
IP = "[IP]"
BINARY = "[BINARY]"

_SECRETS = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|(?<![\w-])sk-[A-Za-z0-9_-]{16,}"  # OpenAI, Anthropic (sk-ant-), ours (sk-mx-)
    r"|(?<!\w)[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"  # AWS access key ids
    r"|(?<!\w)gh[pousr]_[A-Za-z0-9]{30,}|(?<!\w)github_pat_[A-Za-z0-9_]{22,}"  # GitHub
    r"|(?<!\w)xox[abposre]-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?<!\w)AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
    re.DOTALL,
)
# `Bearer <token>` and `Basic <credentials>` keep the scheme.
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{12,}")
# A value named as a secret: `api_key=…`, `"token": "…"`, `password: …`, `X-Api-Key: …`.
_NAMED = re.compile(
    r"(?i)\b((?:[a-z0-9]+[_-])*(?:api[_-]?key|apikey|secret|token|password|passwd|pwd"
    r"|credentials?|private[_-]?key|access[_-]?key|auth)(?:[_-][a-z0-9]+)*)"
    r"(\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"([^\s\"'\\,;&<>]{6,})"
)
# `scheme://user:password@host`
_URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/@:]+:[^\s/@]+(?=@)")

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)

_CARD = re.compile(
    r"(?<![\d.,+-])(?:"
    r"\d{13,19}"
    r"|\d{4}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?"
    r"|\d{4}([ -])\d{6}\2\d{4,5}"
    r")(?![\d-]|\.\d)"
)

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})(?![\w:])"
)

_PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,5}){2,6}(?!\d)"  # +44 20 7946 0958
    r"|(?<![\w(])\(\d{2,5}\)[ .-]?\d{2,4}(?:[ .-]\d{2,5}){1,3}(?!\d)"  # (555) 123-4567
    r"|(?<![\w.-])\d{3}([.-])\d{3}\1\d{4}(?![\w-]|\.\d)"  # 555-123-4567
    r"|(?<![\w.,-])0[1-9]\d{0,3}([ .-])\d{2,4}(?:\2\d{2,4}){1,4}(?![\w-]|\.\d)"  # 06 12 34 56 78
)
_DATE = re.compile(r"^(?:\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}[./-]\d{1,2}[./-]\d{1,2})$")

_BASE64 = re.compile(r"^[A-Za-z0-9+/=_-]{256,}$")
_DATA_URL = re.compile(r"^(data:[\w.+-]+/[\w.+-]+(?:;[\w=.-]+)*;base64,)[A-Za-z0-9+/=]+$")


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn(digits):
        return CARD
    return text


def _ipv4(match: re.Match[str]) -> str:
    text = match.group(0)
    start = match.start()
    before = match.string[start - 1 : start] if start else ""
    if before in {"v", "V"} or any(int(part) > 255 for part in text.split(".")):
        return text
    return IP


def _ipv6(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.count(":") < 2 or text == "::":
        return text
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return text
    return IP


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if _DATE.match(text) or not 7 <= digits <= 15:
        return text
    return PHONE


_STEPS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (_SECRETS, SECRET),
    (_AUTH_SCHEME, rf"\1\2{SECRET}"),
    (_NAMED, rf"\1\2{SECRET}"),
    (_URL_CREDENTIALS, SECRET),
    (_EMAIL, EMAIL),
    (_CARD, _card),
    (_IPV6, _ipv6),
    (_IPV4, _ipv4),
    (_PHONE, _phone),
]


def redact_text(text: str) -> str:
    """`text` with every secret and personal datum replaced by its placeholder."""
    if len(text) >= 256:
        data_url = _DATA_URL.match(text)
        if data_url:
            return data_url.group(1) + BINARY
        if _BASE64.match(text):
            return BINARY
    for pattern, replacement in _STEPS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """A copy of a JSON value with every string redacted (object keys are kept: they are the
    shape of the data, not its content)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
