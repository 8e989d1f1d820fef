"""What the deployment tests drive and read: the admin API (httpx), the gateways (the official
`openai` SDK, a fresh connection per call so every worker of a gateway gets its share) and the
control plane's store (read directly, as an auditor would)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import msgspec
import openai
from sqlalchemy import func, select

from deployment.processes import ADMIN_TOKEN, GatewayNode
from muxgate.store import Store
from muxgate.store import tables as t
from waiting import HANG

MODEL = "test/echo"
T = TypeVar("T")


class Admin:
    """The admin API of one control plane; every call must succeed."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(
            base_url=f"{url}/admin/v1",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=15.0,
        )

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, body: object | None = None) -> Any:
        response = self.client.request(method, path, json=body)
        if response.status_code >= 300:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def catalog(self, mock_url: str, price: str = "0.15") -> None:
        """One provider (the mock), one model, one channel priced `price` USD per million."""
        self.call("POST", "/providers", {"id": "mock", "base_url": mock_url})
        self.call("POST", "/models", {"slug": MODEL})
        channel = {
            "id": "echo-mock",
            "model": MODEL,
            "provider": "mock",
            "upstream_model": "echo",
            "price": {"prompt": price, "completion": price},
        }
        self.call("POST", "/channels", channel)

    def account(self, account_id: str) -> None:
        self.call("POST", "/accounts", {"id": account_id})

    def key(self, account_id: str) -> tuple[str, str]:
        """A new key: (id, secret)."""
        created = self.call("POST", "/keys", {"account": account_id})
        return created["key"]["id"], created["secret"]

    def revoke(self, key_id: str) -> None:
        self.call("POST", f"/keys/{key_id}/revoke")

    def block(self, account_id: str, blocked: bool) -> None:
        self.call("PATCH", f"/accounts/{account_id}", {"blocked": blocked})

    def top_up(self, account_id: str, usd: str) -> None:
        self.call("POST", f"/accounts/{account_id}/ledger", {"kind": "top_up", "amount": usd})

    def ledger(self, account_id: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.call("GET", f"/accounts/{account_id}/ledger")
        return entries


class Audit(msgspec.Struct, frozen=True):
    """What the store holds about usage: records and charge entries per request id."""

    records: dict[str, int]
    charges: dict[str, int]
    charged_nano: int
    cost_nano: int


class StoreReader:
    """The control plane's store, opened once on a private event loop in this thread."""

    def __init__(self, url: str) -> None:
        self.runner = asyncio.Runner()
        self.store = self.runner.run(Store.open(url))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def close(self) -> None:
        self.runner.run(self.store.close())
        self.runner.close()

    def record_ids(self) -> set[str]:
        return set(self.audit().records)

    def audit(self) -> Audit:
        return self.run(self._audit())

    async def _audit(self) -> Audit:
        u, le = t.usage_records, t.ledger_entries
        charge = le.c.kind == "charge"
        async with self.store.read() as conn:
            per_record = select(u.c.request_id, func.count()).group_by(u.c.request_id)
            records = {str(k): int(n) for k, n in await conn.execute(per_record)}
            per_charge = (
                select(le.c.request_id, func.count()).where(charge).group_by(le.c.request_id)
            )
            charges = {str(k): int(n) for k, n in await conn.execute(per_charge)}
            charged = (
                await conn.execute(
                    select(func.coalesce(func.sum(le.c.purchased_nano + le.c.bonus_nano), 0)).where(
                        charge
                    )
                )
            ).scalar_one()
            cost = (
                await conn.execute(select(func.coalesce(func.sum(u.c.cost_nano_usd), 0)))
            ).scalar_one()
        return Audit(
            records=records,
            charges=charges,
            charged_nano=-int(charged),
            cost_nano=int(cost),
        )

    def wait_for(self, ids: set[str], timeout: float) -> set[str]:
        """Polls until every id in `ids` has a usage record; returns those still missing."""
        deadline = time.monotonic() + timeout
        while True:
            missing = ids - self.record_ids()
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.1)


def sdk(gateway: GatewayNode, secret: str) -> openai.OpenAI:
    """An SDK client that opens a new connection per call (no retries: we count answers)."""
    return openai.OpenAI(
        base_url=f"{gateway.url}/api/v1",
        api_key=secret,
        max_retries=0,
        timeout=10.0,
        http_client=httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)),
    )


Outcome = tuple[int, str | None]
"""HTTP status and, for errors, the `error.type` of our error body."""


def error_type(exc: openai.APIStatusError) -> str | None:
    try:
        body = exc.response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("type") if isinstance(error, dict) else None


def outcome(call: Callable[[], object]) -> Outcome:
    try:
        call()
    except openai.APIStatusError as exc:
        return exc.status_code, error_type(exc)
    return 200, None


def chat(client: openai.OpenAI) -> str:
    """One chat completion; its request id (what the usage record is keyed by)."""
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "ping"}], max_tokens=8
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    return raw.headers["x-muxgate-request-id"]


def converge(gateways: list[GatewayNode], secret: str, want: Outcome, since: float) -> float:
    """Seconds from `since` until every gateway answers `want` on `GET /models`, proven by a
    run of consecutive answers (each on a new connection, so each worker takes part). Fails
    if that has not happened after `HANG` seconds; how fast it happens is `bench/`'s to say
    (`control_propagation.py`)."""
    clients = {g.name: sdk(g, secret) for g in gateways}
    needed = {g.name: 2 * g.workers + 2 for g in gateways}
    run = dict.fromkeys(clients, 0)
    first: dict[str, float] = {}
    reached: dict[str, float] = {}
    deadline = since + HANG
    try:
        while len(reached) < len(clients) and time.monotonic() < deadline:
            for name, client in clients.items():
                if name in reached:
                    continue
                got = outcome(client.models.list)
                now = time.monotonic()
                if got != want:
                    run[name] = 0
                    continue
                if run[name] == 0:
                    first[name] = now
                run[name] += 1
                if run[name] >= needed[name]:
                    reached[name] = first[name] - since
            time.sleep(0.005)
    finally:
        for client in clients.values():
            client.close()
    stuck = set(clients) - set(reached)
    assert not stuck, f"{sorted(stuck)} never answered {want} in {HANG} s"
    return max(reached.values())


def load(gateways: list[GatewayNode], secret: str, n: int, threads: int = 4) -> list[str]:
    """`n` chat completions spread round-robin over `gateways`; every one must succeed."""
    local = threading.local()
    opened: list[openai.OpenAI] = []

    def one(i: int) -> str:
        gateway = gateways[i % len(gateways)]
        clients: dict[str, openai.OpenAI] = local.__dict__.setdefault("clients", {})
        if gateway.name not in clients:
            clients[gateway.name] = sdk(gateway, secret)
            opened.append(clients[gateway.name])
        return chat(clients[gateway.name])

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(n)))
    finally:
        for client in opened:
            client.close()
