"""The gateway reaches its providers through the egress proxy its environment names
(`HTTP_PROXY`...), authenticating with the proxy URL's credentials and never logging them; hosts
listed in `NO_PROXY` are reached directly."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator

import openai
import pytest

from conftest import ServeOnMock, channel, gateway_toml, key, model, provider

SECRET = "sk-proxy-test"
PROXY_PASSWORD = "pr0xy-pa55word"


class ForwardingProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy: records each connection's first request line and `proxy-authorization`,
    then forwards the bytes to the origin the absolute-form request (or CONNECT) names."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Forward)
        self.seen: list[tuple[str, str | None]] = []

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port


class Forward(socketserver.BaseRequestHandler):
    server: ForwardingProxy

    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(65536)
            if not data:
                return
            head += data
        lines = head.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        auth = next(
            (
                line.split(":", 1)[1].strip()
                for line in lines
                if line.lower().startswith("proxy-authorization:")
            ),
            None,
        )
        self.server.seen.append((lines[0], auth))
        method, target, _ = lines[0].split(" ")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            host, _, port = target.removeprefix("http://").split("/")[0].rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            upstream.sendall(head)
        with upstream:
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    server = ForwardingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def config(mock_url: str) -> str:
    return gateway_toml(
        [provider("mock", mock_url)],
        [model("openai/gpt-4o-mini", channel("c1", "mock", "gpt-4o-mini"))],
        [key("k1", "acme", SECRET)],
    )


def chat(url: str) -> str | None:
    with openai.OpenAI(base_url=f"{url}/api/v1", api_key=SECRET, max_retries=0) as client:
        completion = client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
        )
    return completion.choices[0].message.content


def test_providers_are_reached_through_the_proxy_with_its_credentials(
    serve_on_mock: ServeOnMock, proxy: ForwardingProxy
) -> None:
    proxy_url = f"http://alice:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
    env = {"HTTP_PROXY": proxy_url, "http_proxy": "", "NO_PROXY": "", "no_proxy": ""}
    gateway = serve_on_mock({"gpt-4o-mini": {"reply": "via proxy"}}, config, env)
    assert chat(gateway.url) == "via proxy"
    assert len(proxy.seen) == 1, proxy.seen
    line, auth = proxy.seen[0]
    assert line.startswith("POST http://127.0.0.1:") and line.endswith(
        "/v1/chat/completions HTTP/1.1"
    ), line
    assert auth == "Basic YWxpY2U6cHIweHktcGE1NXdvcmQ=", auth  # alice:pr0xy-pa55word
    assert PROXY_PASSWORD not in gateway.log()


def test_no_proxy_hosts_are_reached_directly(
    serve_on_mock: ServeOnMock, proxy: ForwardingProxy
) -> None:
    env = {
        "HTTP_PROXY": f"http://127.0.0.1:{proxy.port}",
        "http_proxy": "",
        "NO_PROXY": "example.com,127.0.0.1",
        "no_proxy": "",
    }
    gateway = serve_on_mock({"gpt-4o-mini": {"reply": "direct"}}, config, env)
    assert chat(gateway.url) == "direct"
    assert proxy.seen == []
