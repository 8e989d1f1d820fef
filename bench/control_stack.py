"""The production processes the control-plane benchmark drives: a private redis-server, a
`muxgate control` process over SQLite or a private PostgreSQL database, and `muxgate gateway
--redis` workers. All are started through `run.Services`, so they are stopped by PID with their
children and their CPU is known to be ours."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import redis
from sqlalchemy import text

from muxgate.store import Store
from muxgate.store.usage import usage_count
from procs import BenchError, Service, Services, free_port, http_request, stop, wait_ready

ADMIN_TOKEN = "mxa-bench-" + secrets.token_hex(8)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
USAGE_STREAM = "muxgate:usage"
USAGE_GROUP = "control"


@dataclass(frozen=True)
class RedisProc:
    service: Service
    port: int

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db)


@dataclass(frozen=True)
class ControlProc:
    service: Service
    port: int
    database: str


@dataclass(frozen=True)
class GatewayProc:
    service: Service
    port: int


def wait_for(service: Service, what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll `check` until it holds; fail with the service's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise BenchError(
                f"{service.name} exited with {service.proc.returncode}:\n{service.log_tail()}"
            )
        with contextlib.suppress(OSError, redis.RedisError):
            if check():
                service.remember_tree()
                return
        time.sleep(0.05)
    raise BenchError(f"{service.name}: {what} not seen after {timeout:.0f}s:\n{service.log_tail()}")


def start_redis(services: Services, workdir: Path) -> RedisProc:
    """redis-server without persistence, as tests/servers.py starts it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server not found (Debian: apt-get install -y redis-server)")
    port = free_port()
    directory = workdir / "redis"
    directory.mkdir()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    argv += ["no", "--dir", str(directory), "--daemonize", "no", "--logfile", ""]
    proc = RedisProc(services.start("redis", argv), port)
    client = proc.client(0)
    try:
        wait_for(proc.service, "PONG", lambda: bool(client.ping()), 10)
    finally:
        client.close()
    return proc


def import_config(muxgate: Path, toml: str, path: Path, database: str) -> None:
    """Seed `database` with `muxgate config import`, as an operator would."""
    path.write_text(toml)
    argv = [str(muxgate), "config", "import", str(path), "--database", database]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BenchError(f"config import into {database} failed:\n{done.stdout}{done.stderr}")


def admin_request(
    port: int, method: str, path: str, body: object = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """One call to the admin API with the bench's admin token, on a fresh connection."""
    payload = None if body is None else json.dumps(body).encode()
    return http_request(port, method, path, payload, timeout, token=ADMIN_TOKEN)


def start_control(
    services: Services, muxgate: Path, name: str, database: str, redis_url: str
) -> ControlProc:
    port = free_port()
    argv = [str(muxgate), "control", "--database", database, "--redis", redis_url]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    service = services.start(name, argv, env={"MUXGATE_ADMIN_TOKEN": ADMIN_TOKEN})
    wait_for(
        service,
        "admin API answering 200",
        lambda: admin_request(port, "GET", "/admin/v1/accounts", timeout=2)[0] == 200,
        60,
    )
    return ControlProc(service, port, database)


def start_gateway(services: Services, muxgate: Path, name: str, redis_url: str) -> GatewayProc:
    """One `muxgate gateway --redis` process with one worker; ready once it holds a snapshot."""
    port = free_port()
    spill = services.workdir / f"{name}-spill"
    argv = [str(muxgate), "gateway", "--redis", redis_url, "--workers", "1"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--spill-dir", str(spill)]
    service = services.start(name, argv)
    wait_ready(service, port, method="GET", path="/healthz", body=None, timeout=60)
    return GatewayProc(service, port)


def stop_services(services: Services, stopped: list[Service]) -> None:
    """Stop some of the run's services now (by PID, children included), the rest stay up."""
    for service in reversed(stopped):
        stop(service)
        with contextlib.suppress(ValueError):
            services.started.remove(service)


# --------------------------------------------------------------------------- usage stream


@dataclass(frozen=True)
class StreamState:
    length: int
    pending: int
    last_delivered: str
    last_entry: str

    @property
    def drained(self) -> bool:
        """Every entry delivered to the group and acknowledged."""
        return self.pending == 0 and self.last_delivered == self.last_entry


def stream_state(client: redis.Redis) -> StreamState:
    info = client.xinfo_stream(USAGE_STREAM) if client.exists(USAGE_STREAM) else {}
    groups = client.xinfo_groups(USAGE_STREAM) if info else []
    group = next((g for g in groups if g["name"] in (USAGE_GROUP, USAGE_GROUP.encode())), None)

    def text(value: object) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return StreamState(
        length=int(info.get("length", 0)),
        pending=int(group["pending"]) if group else 0,
        last_delivered=text(group["last-delivered-id"]) if group else "0-0",
        last_entry=text(info.get("last-generated-id", "0-0")),
    )


def has_group(client: redis.Redis) -> bool:
    if not client.exists(USAGE_STREAM):
        return False
    names = {g["name"] for g in client.xinfo_groups(USAGE_STREAM)}
    return USAGE_GROUP in names or USAGE_GROUP.encode() in names


class StoreCounter:
    """`usage_count` of the store the control plane writes, from a private event loop."""

    def __init__(self, database: str) -> None:
        self.runner = asyncio.Runner()
        self.store = self.runner.run(Store.open(database))

    def count(self) -> int:
        return self.runner.run(usage_count(self.store))

    def backend_pid(self) -> int:
        """This reader's own PostgreSQL server process (one pooled connection, reused)."""

        async def pid() -> int:
            async with self.store.read() as conn:
                return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())

        return self.runner.run(pid())

    def close(self) -> None:
        self.runner.run(self.store.close())
        self.runner.close()


# --------------------------------------------------------------------------- PostgreSQL


async def _pg_admin(sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def pg_admin(sql: str, *args: object) -> list[asyncpg.Record]:
    return asyncio.run(_pg_admin(sql, *args))


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A private PostgreSQL database on 127.0.0.1:5432, dropped at the end."""
    name = "muxgate_bench_" + secrets.token_hex(6)
    try:
        pg_admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}") from exc
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        pg_admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def pg_backends(database: str) -> list[int]:
    """PIDs of the server processes connected to `database` (its last path segment)."""
    name = database.rsplit("/", 1)[1]
    rows = pg_admin("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)
    return [int(row["pid"]) for row in rows]


def pg_version() -> str:
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        return str(pg_admin("SHOW server_version")[0][0]).split(" ")[0]
    return "?"
