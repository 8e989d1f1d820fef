"""Request bodies on every HTTP surface of `muxgate serve`: a caller without a token cannot make
a worker read a body, an authenticated body over the cap is a 413, and JSON nested past the
documented depth is a 400 in the surface's own format, never forwarded."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import GatewayProcess, ServeOnMock, channel, gateway_toml, key, model, provider

KEY = "sk-test-limits"
ADMIN = "admin-token-limits"
MiB = 1024 * 1024
# Sent in chunks with no Content-Length: a worker that buffered it would grow by at least this.
LARGE = 96 * MiB
DEPTH = 100_000


def config(mock_url: str) -> str:
    base_urls = {"openai": mock_url, "anthropic": mock_url, "gemini": f"{mock_url}beta"}
    return gateway_toml(
        [provider(f"via-{p}", url, protocol=p) for p, url in base_urls.items()],
        [model("test/plain", channel("plain", "via-openai", "plain"))],
        [key("k", "team", KEY)],
    )


@pytest.fixture(scope="module")
def gateway(serve_on_mock: ServeOnMock) -> GatewayProcess:
    served = serve_on_mock(
        {"plain": {"reply": "Hello."}}, config, env={"MUXGATE_ADMIN_TOKEN": ADMIN}
    )
    # Warm each surface once, so what a test measures is the request, not first-use setup.
    assert served.admin("GET", "accounts").status_code == 200
    key = {"authorization": f"Bearer {KEY}"}
    balance = httpx.get(f"{served.url}/api/v1/management/payg/balance", headers=key)
    assert balance.status_code == 200
    return served


def _descendants(pid: int) -> Iterator[int]:
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            yield int(child)
            yield from _descendants(int(child))


def rss_bytes(gateway: GatewayProcess) -> int:
    """Resident memory of the gateway and its workers (the control plane runs in them)."""
    total = 0
    for pid in [gateway.proc.pid, *_descendants(gateway.proc.pid)]:
        with Path(f"/proc/{pid}/status").open() as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def send_chunked(
    gateway: GatewayProcess, method: str, path: str, headers: dict[str, str], size: int
) -> tuple[int, bytes, int]:
    """Send a chunked body of `size` bytes, stopping as soon as the server answers: (status,
    answer body, bytes of body sent)."""
    _, _, port = gateway.url.rpartition(":")
    chunk = b"[" * MiB
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    head += "Content-Type: application/json\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sent = 0
    with socket.create_connection(("127.0.0.1", int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n")
        answered = False
        while sent < size:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                answered = True
                break
            assert writable, "the server neither reads nor answers"
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                answered = True
                break
            sent += len(chunk)
        if not answered:
            sock.sendall(b"0\r\n\r\n")
        reply = b""
        while part := sock.recv(65536):
            reply += part
    head_bytes, _, body = reply.partition(b"\r\n\r\n")
    status = int(head_bytes.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head_bytes.lower():
        body = _unchunk(body)
    return status, body, sent


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/admin/v1/accounts", {}),
        ("POST", "/admin/v1/accounts", {"authorization": "Bearer wrong"}),
        ("PUT", "/api/v1/management/routing/settings", {"authorization": "Bearer sk-wrong"}),
        ("GET", "/api/v1/insurance/cases", {}),
    ],
)
def test_an_unauthenticated_body_is_refused_unread(
    gateway: GatewayProcess, method: str, path: str, headers: dict[str, str]
) -> None:
    before = rss_bytes(gateway)
    status, body, _sent = send_chunked(gateway, method, path, headers, LARGE)
    grown = rss_bytes(gateway) - before
    assert status == 401, body
    assert json.loads(body)["error"]["type"] == "authentication_error"
    assert grown < LARGE // 4, f"the worker grew by {grown / MiB:.0f} MiB"


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/admin/v1/accounts", {"authorization": f"Bearer {ADMIN}"}),
        ("PUT", "/api/v1/management/routing/settings", {"authorization": f"Bearer {KEY}"}),
    ],
)
def test_an_authenticated_body_over_the_cap_is_413(
    gateway: GatewayProcess, method: str, path: str, headers: dict[str, str]
) -> None:
    before = rss_bytes(gateway)
    status, body, _sent = send_chunked(gateway, method, path, headers, LARGE)
    grown = rss_bytes(gateway) - before
    assert status == 413, body
    error = json.loads(body)["error"]
    assert error["code"] == "413" and error["type"] == "request_too_large", error
    assert grown < LARGE // 4, f"the worker grew by {grown / MiB:.0f} MiB"


def test_bodies_within_the_cap_are_read_whole_chunked_or_not(gateway: GatewayProcess) -> None:
    admin = {"authorization": f"Bearer {ADMIN}"}

    def pieces(text: str) -> Iterator[bytes]:
        yield text[:5].encode()
        yield text[5:].encode()

    for account, content in (
        ("sized", '{"id": "sized"}'),
        ("chunked", pieces('{"id": "chunked"}')),
    ):
        r = httpx.post(f"{gateway.url}/admin/v1/accounts", content=content, headers=admin)
        assert r.status_code == 201 and r.json()["id"] == account, r.text


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deep_json_on_the_control_plane_is_400_and_not_logged_as_an_error(
    gateway: GatewayProcess,
) -> None:
    admin = {"authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
    account = f'{{"id": "deep", "name": "x", "extra": {deep(1000)}}}'
    r = httpx.post(f"{gateway.url}/admin/v1/accounts", content=account, headers=admin)
    assert r.status_code == 400, r.text
    assert "128" in r.json()["error"]["message"]
    routing = f'{{"default_fallback": null, "x": {deep(1000)}}}'
    r = httpx.put(
        f"{gateway.url}/api/v1/management/routing/settings",
        content=routing,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert "128" in r.json()["error"]["message"]
    assert "Traceback" not in gateway.log() and "ERROR" not in gateway.log()


def test_deep_json_in_an_inference_request_is_400_in_each_surfaces_format(
    gateway: GatewayProcess,
) -> None:
    nested = deep(DEPTH)
    messages = '[{"role": "user", "content": "hi"}]'
    chat = f'{{"model": "test/plain", "messages": {messages}, "unknown": {nested}}}'
    r = httpx.post(
        f"{gateway.url}/api/v1/chat/completions",
        content=chat,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_params" and "128" in error["message"], error

    body = f'{{"model": "test/plain", "max_tokens": 5, "messages": {messages}, "x": {nested}}}'
    r = httpx.post(
        f"{gateway.url}/api/anthropic/v1/messages",
        content=body,
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "error", r.text
    assert r.json()["error"]["type"] == "invalid_request_error" and "128" in r.text

    contents = '[{"role": "user", "parts": [{"text": "hi"}]}]'
    body = f'{{"contents": {contents}, "x": {nested}}}'
    r = httpx.post(
        f"{gateway.url}/api/vertex-ai/v1/publishers/test/models/plain:generateContent",
        content=body,
        headers={"x-goog-api-key": KEY},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT" and "128" in r.text


def test_json_within_the_depth_still_reaches_the_provider(gateway: GatewayProcess) -> None:
    chat = {
        "model": "test/plain",
        "messages": [{"role": "user", "content": "hi " + "[{" * 500}],
        "x_nested": json.loads(deep(100)),
    }
    r = httpx.post(
        f"{gateway.url}/api/v1/chat/completions",
        json=chat,
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 200, r.text
