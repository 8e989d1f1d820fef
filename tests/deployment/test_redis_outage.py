"""Redis goes away under a running deployment: workers keep serving on the snapshot they hold,
usage waits in their queues and spill files and reaches the store exactly once when Redis is
back, and a gateway that starts without Redis waits (503) until the control plane, by itself,
publishes again."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from deployment.conftest import Deploy
from deployment.helpers import chat, converge, load, sdk
from waiting import HANG

SPILL_ENV = {"MUXGATE_USAGE_QUEUE_BYTES": "4096"}


def test_gateway_started_without_redis_waits_then_serves(deploy: Deploy) -> None:
    d = deploy(workers=(1,))
    d.admin.catalog(d.mock_url)
    d.admin.account("acme")
    _, secret = d.admin.key("acme")
    converge(d.gateways, secret, (200, None), time.monotonic())

    d.redis.stop()
    # Changed while Redis is down: the control plane must publish it once Redis is back.
    _, late_secret = d.admin.key("acme")
    late = d.add_gateway(1, healthy=False)
    health = httpx.get(f"{late.url}/healthz", timeout=5)
    assert health.status_code == 503
    assert health.json()["error"]["type"] == "service_unavailable", health.text
    with sdk(late, secret) as client, pytest.raises(openai.APIStatusError) as refused:
        chat(client)
    assert refused.value.status_code == 503
    body = refused.value.response.json()
    assert body["error"]["type"] == "service_unavailable", body
    assert body["error"]["code"] == "503" and body["error"]["message"], body

    d.redis.start()
    back = time.monotonic()
    # The control plane notices the empty Redis at its next watch (every second) and
    # republishes; the workers take it at their next poll.
    for key in (secret, late_secret):
        converge(d.gateways, key, (200, None), back)
    late.wait_healthy()
    for gateway in d.gateways:
        for key in (secret, late_secret):
            with sdk(gateway, key) as client:
                assert chat(client)


def test_usage_survives_an_outage_through_queues_and_spill_files(deploy: Deploy) -> None:
    d = deploy(workers=(2,))
    small = d.add_gateway(1, SPILL_ENV)  # its queue overflows to spill files
    big = d.gateways[0]
    d.admin.catalog(d.mock_url)
    d.admin.account("acme")
    _, secret = d.admin.key("acme")
    converge(d.gateways, secret, (200, None), time.monotonic())
    warm = set(load(d.gateways, secret, 4))
    assert not d.store.wait_for(warm, timeout=HANG)

    d.redis.stop()
    sent = load(d.gateways, secret, 200)
    assert len(set(sent)) == 200
    assert small.spill_files(), "the small queue never overflowed to a spill file"
    assert not big.spill_files(), "the default queue spilled 100 requests' usage"
    d.redis.start()

    assert not d.store.wait_for(set(sent), timeout=HANG), "usage lost in the outage"
    audit = d.store.audit()
    assert set(audit.records) == warm | set(sent)
    assert all(n == 1 for n in audit.records.values())
    assert audit.charges == dict.fromkeys(warm | set(sent), 1)
    assert audit.charged_nano == audit.cost_nano > 0
    assert small.spill_drained(), "replayed spill files were left behind"


def test_gateway_stopped_during_outage_replays_its_spill_files(deploy: Deploy) -> None:
    d = deploy(workers=(2, 1))
    stopped, running = d.gateways
    d.admin.catalog(d.mock_url)
    d.admin.account("acme")
    _, secret = d.admin.key("acme")
    converge(d.gateways, secret, (200, None), time.monotonic())

    d.redis.stop()
    on_stopped = set(load([stopped], secret, 60))
    on_running = set(load([running], secret, 60))
    took = stopped.stop(timeout=HANG)
    assert not stopped.hung, f"shutdown during the outage hung ({took:.1f} s)"
    writers = {p.name.partition("-")[0] for p in stopped.spill_files()}
    assert len(writers) == stopped.workers, f"spilled at shutdown by {writers} only"

    d.redis.start()
    assert not d.store.wait_for(on_running, timeout=HANG)
    assert not d.store.record_ids() & on_stopped, "usage appeared from a stopped gateway"

    stopped.start()
    stopped.wait_healthy()
    assert not d.store.wait_for(on_stopped, timeout=HANG), "spilled usage was not replayed"
    audit = d.store.audit()
    assert set(audit.records) == on_stopped | on_running
    assert audit.charges == dict.fromkeys(on_stopped | on_running, 1)
    assert stopped.spill_drained(), "replayed spill files were left behind"
