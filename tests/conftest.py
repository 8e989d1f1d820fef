"""Fixtures: a real mock provider (the product's own, in-process) and real gateway processes
started through the CLI, exactly as a user runs them, from TOML files built by `gateway_toml`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest

from muxgate.mock import MockConfig, MockProvider, start
from muxgate.store import Store
from muxgate.store.usage import get_usage, list_usage
from muxgate.wire import UsageEvent
from waiting import HANG

ROOT = Path(__file__).resolve().parent.parent

Table = dict[str, object]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mock_config(models: dict[str, dict[str, object]]) -> MockConfig:
    return msgspec.convert({"models": models}, MockConfig)


@pytest.fixture(scope="session")
def start_mock() -> Iterator[Callable[[dict[str, dict[str, object]]], MockProvider]]:
    """Start mock providers scripted per model; all are stopped at the end of the session."""
    started: list[MockProvider] = []

    def starter(models: dict[str, dict[str, object]]) -> MockProvider:
        provider = start(mock_config(models), host="127.0.0.1", port=0, threads=1)
        started.append(provider)
        return provider

    yield starter
    for provider in started:
        provider.stop()


@dataclass
class GatewayProcess:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    admin_token: str | None = None

    @property
    def database(self) -> str:
        return f"sqlite:///{self.data_dir / 'muxgate.db'}"

    def usage(self) -> list[UsageEvent]:
        """The usage records the control plane has written so far."""

        async def read() -> list[UsageEvent]:
            store = await Store.open(self.database)
            try:
                return await list_usage(store)
            finally:
                await store.close()

        return asyncio.run(read())

    def usage_for(self, request_id: str, timeout: float = HANG) -> UsageEvent:
        """The request's usage record, once metering has carried it into the store."""

        async def poll() -> UsageEvent | None:
            store = await Store.open(self.database)
            try:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    event = await get_usage(store, request_id)
                    if event is not None:
                        return event
                    await asyncio.sleep(0.02)
                return None
            finally:
                await store.close()

        event = asyncio.run(poll())
        if event is None:
            raise AssertionError(f"no usage record for {request_id}")
        return event

    def admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        """One admin API call (`/admin/v1/<path>`) with the token the gateway was started with
        (`MUXGATE_ADMIN_TOKEN` in its environment)."""
        return httpx.request(
            method,
            f"{self.url}/admin/v1/{path}",
            json=body,
            headers={"authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def provider(id: str, base_url: str, **fields: object) -> Table:
    return {"id": id, "base_url": base_url, **fields}


def channel(id: str, provider: str, upstream_model: str, **fields: object) -> Table:
    return {"id": id, "provider": provider, "upstream_model": upstream_model, **fields}


def model(slug: str, *channels: Table, **fields: object) -> Table:
    return {"slug": slug, **fields, "channels": list(channels)}


def key(id: str, account: str, secret: str, **fields: object) -> Table:
    return {"id": id, "account": account, "secret": secret, **fields}


def gateway_toml(
    providers: Sequence[Table],
    models: Sequence[Table],
    keys: Sequence[Table],
    accounts: Sequence[Table] | None = None,
    extra: str = "",
) -> str:
    """A gateway's TOML file, so each test states only its own tables; `accounts` defaults to a
    plain one per account the keys name, and `extra` is appended as written."""
    if accounts is None:
        accounts = [{"id": a} for a in dict.fromkeys(str(k["account"]) for k in keys)]
    sections = {"providers": providers, "models": models, "accounts": accounts, "keys": keys}
    tables = [toml_table(name, t) for name, rows in sections.items() for t in rows]
    return "\n\n".join([*tables, extra])


def toml_table(name: str, fields: Table) -> str:
    """One `[[name]]` table; a field holding a list of tables becomes `[[name.field]]` tables."""
    lines, subtables = [f"[[{name}]]"], []
    for field, value in fields.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            subtables += [toml_table(f"{name}.{field}", v) for v in value]
        else:
            lines.append(f"{field} = {toml_value(value)}")
    return "\n\n".join(["\n".join(lines), *subtables])


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return f"[{', '.join(map(toml_value, value))}]"
    if isinstance(value, dict):
        return f"{{ {', '.join(f'{k} = {toml_value(v)}' for k, v in value.items())} }}"
    return str(value)


ServeOnMock = Callable[..., "GatewayProcess"]


@pytest.fixture(scope="module")
def serve_on_mock(
    start_mock: Callable[[dict[str, dict[str, object]]], MockProvider],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServeOnMock]:
    """`serve(scripts, config, env=None)`: a mock provider running `scripts` and an embedded
    gateway on `config(mock_base_url)`; the gateways are stopped with the module."""
    started: list[GatewayProcess] = []

    def serve(
        scripts: dict[str, dict[str, object]],
        config: Callable[[str], str],
        env: dict[str, str] | None = None,
    ) -> GatewayProcess:
        mock = start_mock(scripts)
        mock_url = f"http://127.0.0.1:{mock.port}/v1"
        gateway = start_gateway(tmp_path_factory.mktemp("gateway"), config(mock_url), env=env)
        started.append(gateway)
        return gateway

    yield serve
    for gateway in started:
        gateway.stop()


def start_gateway(
    tmp: Path, config_toml: str | None, env: dict[str, str] | None = None
) -> GatewayProcess:
    port = free_port()
    data_dir = tmp / "data"
    args = [sys.executable, "-m", "muxgate.cli", "serve", "--port", str(port)]
    args += ["--data-dir", str(data_dir)]
    if config_toml is not None:
        config_path = tmp / "muxgate.toml"
        config_path.write_text(config_toml)
        args += ["--config", str(config_path)]
    log_path = tmp / "gateway.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=tmp
    )
    gateway = GatewayProcess(
        f"http://127.0.0.1:{port}", data_dir, proc, log_path, (env or {}).get("MUXGATE_ADMIN_TOKEN")
    )
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}:\n{gateway.log()}")
        try:
            if httpx.get(f"{gateway.url}/healthz", timeout=10).status_code == 200:
                return gateway
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    gateway.stop()
    raise AssertionError(f"gateway did not become healthy:\n{gateway.log()}")
