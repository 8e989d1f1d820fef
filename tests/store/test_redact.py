"""Redaction of insurance cases: what must go (credentials, e-mail addresses, phone and card
numbers, IP addresses) and, as much, what must stay (ordinary numbers, dates, versions, code),
since a case full of false placeholders is useless to the account that exports it."""

from __future__ import annotations

import pytest

from muxgate.store.redact import redact, redact_text

SECRETS = [
    "sk-proj-Abcdefghijklmnopqrstuvwxyz012345",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz-ABCDEFG",
    "sk-mx-5mPl3K3yW1thUrlsafeChars_-xyzxyz",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "A1b2C3d4E5" * 4,
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "xoxb-123456789012-abcdefghijklmnop",
    "AIzaSyA-1234567890abcdefghijklmnopqrstu",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_known_credential_formats_are_secrets(secret: str) -> None:
    assert redact_text(f"use {secret} please") == "use [SECRET] please"
    assert redact_text(f'"{secret}"') == '"[SECRET]"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi_jklmnop", "Authorization: Bearer [SECRET]"),
        ("authorization: basic dXNlcjpwYXNzd29yZA==", "authorization: basic [SECRET]"),
        ("api_key=0123456789abcdef0123", "api_key=[SECRET]"),
        ('{"client_secret": "s3cr3t-v4lue"}', '{"client_secret": "[SECRET]"}'),
        ('config = {\\"token\\": \\"abcdef123456\\"}', 'config = {\\"token\\": \\"[SECRET]\\"}'),
        ("X-Api-Key: 9f8e7d6c5b4a", "X-Api-Key: [SECRET]"),
        ("PASSWORD=hunter2hunter2", "PASSWORD=[SECRET]"),
        (
            "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG",
            "export AWS_SECRET_ACCESS_KEY=[SECRET]",
        ),
        ("postgres://app:s3cret@db.internal:5432/x", "postgres://[SECRET]@db.internal:5432/x"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----",
            "[SECRET]",
        ),
    ],
)
def test_named_secrets_keep_their_name(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+news@example.co.uk.", "write to [EMAIL]."),
        ("<a.b@sub.example.org>", "<[EMAIL]>"),
        ("call +1 (555) 123-4567 now", "call [PHONE] now"),
        ("+44 20 7946 0958", "[PHONE]"),
        ("+33 6 12 34 56 78", "[PHONE]"),
        ("+4915112345678", "[PHONE]"),
        ("(555) 123-4567", "[PHONE]"),
        ("555-123-4567 or 555.123.4567", "[PHONE] or [PHONE]"),
        ("06 12 34 56 78", "[PHONE]"),
        ("030 1234 5678", "[PHONE]"),
        ("card 4111 1111 1111 1111.", "card [CARD]."),
        ("4111-1111-1111-1111", "[CARD]"),
        ("5500005555555559", "[CARD]"),
        ("Amex 3782 822463 10005", "Amex [CARD]"),
        ("378282246310005", "[CARD]"),
        ("from 10.0.0.1.", "from [IP]."),
        ("192.168.1.254:8080", "[IP]:8080"),
        ("2001:db8::8a2e:370:7334", "[IP]"),
        ("[fe80::1]:443", "[[IP]]:443"),
        ("::ffff:192.0.2.1", "[IP]"),
        ("1.2.3.4", "[IP]"),  # a bare four-part version looks exactly like an address
    ],
)
def test_personal_data_gets_typed_placeholders(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "In 2024 we sold 12345 units at 3.14 each; 1,000,000 views, 100 200 300.",
        "Dates: 2024-01-15, 05.01.2024, 15/01/2024 and 10:30:00.",
        "Versions v1.2.3.4 and 1.2.3, and 300.1.1.1 or 1.2.3.4.5 are not addresses.",
        "Timestamp 1700000000000 and order 1234567890123.",
        "Not a card: 4111 1111 1111 1112.",
        "A 12-digit id 123456789012 and the sum 5551234567.",
        "std::vector<int> v; a::b::c; MAC 00:1A:2B:3C:4D:5E; ratio 16:9.",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "the token count was 512 and the key point is clear",
        "Use @decorator and user@localhost, and x = 2 + 3.",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_binary_payloads_are_dropped_whole() -> None:
    image = "iVBORw0KGgo" + "A" * 400
    assert redact_text(f"data:image/png;base64,{image}") == "data:image/png;base64,[BINARY]"
    assert redact_text(image) == "[BINARY]"
    prose = "word " * 100
    assert redact_text(prose) == prose


def test_json_values_are_walked_and_keys_kept() -> None:
    body = {
        "model": "a/b",
        "temperature": 0.2,
        "stream": True,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "I am bob@example.com"}]},
        ],
        "metadata": {"owner@example.com": None, "ip": "10.1.2.3"},
    }
    assert redact(body) == {
        "model": "a/b",
        "temperature": 0.2,
        "stream": True,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "I am [EMAIL]"}]}],
        "metadata": {"owner@example.com": None, "ip": "[IP]"},
    }
