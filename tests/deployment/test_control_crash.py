"""The control plane is SIGKILLed while it consumes a load and restarted: every request ends
with exactly one usage record and one charge (nothing lost, nothing counted twice), on
PostgreSQL (the production store) and on SQLite."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from deployment.conftest import Deploy
from deployment.helpers import converge, load
from waiting import HANG

REQUESTS = 300


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'control.db'}"


def test_control_plane_killed_mid_load_loses_and_doubles_nothing(
    database: str, deploy: Deploy
) -> None:
    # (database first: a private PostgreSQL database is dropped after the deployment is gone)
    d = deploy(database=database, workers=(2, 1))
    d.admin.catalog(d.mock_url)
    d.admin.account("acme")
    _, secret = d.admin.key("acme")
    converge(d.gateways, secret, (200, None), time.monotonic())

    sent: list[str] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sent.extend(load(d.gateways, secret, REQUESTS))
        except BaseException as exc:
            failure.append(exc)

    loader = threading.Thread(target=run)
    loader.start()
    try:
        deadline = time.monotonic() + HANG
        while len(d.store.record_ids()) < REQUESTS // 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        # Aim the kill at a batch in hand: read by the consumer, not yet acknowledged.
        with redis.Redis.from_url(d.redis.url) as client:
            while time.monotonic() < deadline:
                if client.xpending("muxgate:usage", "control")["pending"]:
                    break
        d.control.kill()
        at_kill = len(d.store.record_ids())
        assert at_kill >= REQUESTS // 4, "the consumer never got going"
        time.sleep(0.3)
        d.restart_control()
    finally:
        loader.join(timeout=60)
    assert not failure, failure
    assert len(set(sent)) == REQUESTS
    assert at_kill < REQUESTS, "the kill came after the whole load was recorded"

    missing = d.store.wait_for(set(sent), timeout=HANG)
    assert not missing, f"{len(missing)} requests have no usage record"
    audit = d.store.audit()
    assert set(audit.records) == set(sent)
    assert all(n == 1 for n in audit.records.values())
    assert audit.charges == dict.fromkeys(sent, 1), "a request was charged twice or never"
    assert audit.charged_nano == audit.cost_nano > 0
    account = d.admin.call("GET", "/accounts/acme")
    trial = 5_000_000_000
    assert account["balance"]["total_nano"] == trial - audit.cost_nano
