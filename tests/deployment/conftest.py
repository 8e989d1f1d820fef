"""A production deployment per test, from real processes: a private redis-server, a
`muxgate control` process over SQLite (or a private PostgreSQL database), gateway processes
with their own spill directories, and the mock provider behind them. Everything is stopped by
PID (SIGINT, then SIGKILL) when the test ends."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from deployment.helpers import Admin, StoreReader
from deployment.processes import ControlNode, GatewayNode
from muxgate.mock import MockProvider
from servers import RedisServer, free_port, redis_server_binary, unavailable

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Deployment:
    tmp: Path
    mock_url: str
    redis: RedisServer
    control: ControlNode
    admin: Admin
    store: StoreReader
    gateways: list[GatewayNode] = field(default_factory=list)

    def add_gateway(
        self, workers: int = 1, env: dict[str, str] | None = None, *, healthy: bool = True
    ) -> GatewayNode:
        """Start one more gateway process; `healthy` waits for its routing table."""
        name = f"gateway{len(self.gateways) + 1}"
        node = GatewayNode(
            self.tmp, name, free_port(), redis_url=self.redis.url, workers=workers, env=env
        )
        self.gateways.append(node)
        node.start()
        if healthy:
            node.wait_healthy()
        else:
            node.wait_listening()
        return node

    def restart_control(self) -> None:
        """Start the control plane again on the same database and port."""
        self.control.start()
        self.control.wait_ready()

    def logs(self) -> str:
        parts = [f"===== {n.name}\n{n.log()}" for n in [self.control, *self.gateways]]
        return "\n".join(parts)


@pytest.fixture(scope="session")
def mock_url(start_mock: Callable[[dict[str, dict[str, object]]], MockProvider]) -> str:
    # `echo` answers one token; `long` a hundred words, so answers fill any small max_tokens.
    provider = start_mock({"echo": {"reply": "pong"}, "long": {"reply": "word " * 100}})
    return f"http://127.0.0.1:{provider.port}/v1"


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL database, dropped at the end."""
    name = "muxgate_deploy_" + secrets.token_hex(6)
    try:
        asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    asyncio.run(_pg(f'DROP DATABASE "{name}" WITH (FORCE)'))


Deploy = Callable[..., Deployment]


@pytest.fixture
def deploy(tmp_path: Path, mock_url: str, request: pytest.FixtureRequest) -> Iterator[Deploy]:
    """`deploy(database=None, workers=(2, 1))`: Redis, a control plane (SQLite in tmp unless
    `database` is given) and one gateway per entry of `workers`, all healthy."""
    if redis_server_binary() is None:
        unavailable("redis-server binary not found on PATH (install the redis-server package)")
    redises: list[RedisServer] = []
    controls: list[ControlNode] = []
    made: list[Deployment] = []

    def make(database: str | None = None, workers: tuple[int, ...] = (2, 1)) -> Deployment:
        redis = RedisServer(tmp_path / "redis")
        redises.append(redis)
        redis.start()
        url = database or f"sqlite:///{tmp_path / 'control.db'}"
        control = ControlNode(tmp_path, free_port(), url, redis.url)
        controls.append(control)
        control.start()
        control.wait_ready()
        deployment = Deployment(
            tmp_path, mock_url, redis, control, Admin(control.url), StoreReader(url)
        )
        made.append(deployment)
        for count in workers:
            deployment.add_gateway(count)
        return deployment

    yield make
    report = getattr(request.node, "rep_call", None)
    for deployment in made:
        for gateway in deployment.gateways:
            gateway.stop()
        deployment.admin.close()
        deployment.store.close()
        if report is not None and report.failed:
            print(deployment.logs())
    for control in controls:
        control.stop()
    for redis in redises:
        redis.kill()
    hung = [n.name for d in made for n in [*d.gateways, d.control] if n.hung]
    if hung:
        pytest.fail(f"did not shut down on SIGINT (killed): {', '.join(hung)}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
