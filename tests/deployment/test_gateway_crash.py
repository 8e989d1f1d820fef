"""A gateway is SIGKILLed under load and started again on the same spill directory: every request
whose answer reached the client completely is metered, exactly once. The usage of an answered
request is on disk (the worker's usage journal) before the answer's first byte leaves."""

from __future__ import annotations

import threading
import time

import openai

from deployment.conftest import Deploy
from deployment.helpers import chat, converge, sdk
from waiting import HANG

CLIENTS = 6


def test_gateway_killed_mid_load_meters_every_answered_request(deploy: Deploy) -> None:
    d = deploy(workers=(2,))
    gateway = d.gateways[0]
    d.admin.catalog(d.mock_url)
    d.admin.account("acme")
    _, secret = d.admin.key("acme")
    converge(d.gateways, secret, (200, None), time.monotonic())

    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with sdk(gateway, secret) as sdk_client:
            while not stop.is_set():
                try:
                    request_id = chat(sdk_client)
                except (openai.APIError, AssertionError):
                    continue  # cut off by the kill: not answered completely
                with lock:
                    answered.append(request_id)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + HANG
        while len(answered) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        gateway.kill()  # the whole process group, mid-load
        with lock:
            at_kill = len(answered)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=HANG)
    assert at_kill >= 200, "the load never got going"

    gateway.start()
    gateway.wait_healthy()
    missing = d.store.wait_for(set(answered), timeout=HANG)
    assert not missing, f"{len(missing)} of {len(answered)} answered requests were never metered"
    records = d.store.audit().records
    assert all(records[request_id] == 1 for request_id in answered)
    assert gateway.spill_drained(), gateway.spill_files()
