"""Rate limits hold across worker processes: four workers sharing one Redis admit exactly what
one process would for a 60-a-minute key (its burst, then one a second), and say so in the
headers of the 429s."""

from __future__ import annotations

import threading
import time

import httpx

from deployment.conftest import Deploy
from deployment.helpers import MODEL


def test_four_workers_admit_what_one_process_would(deploy: Deploy) -> None:
    d = deploy(workers=(4,))
    d.admin.catalog(d.mock_url)
    d.admin.account("acme")
    key_id, secret = d.admin.key("acme")
    gateway = d.gateways[0]
    before = httpx.get(f"{gateway.url}/healthz", timeout=5).json()["routing_version"]
    policy = {"id": "tight", "applies_to": "key", "subjects": [key_id], "rpm": 60, "burst": 5}
    d.admin.call("POST", "/rate-limit-policies", policy)
    deadline = time.monotonic() + 5
    while httpx.get(f"{gateway.url}/healthz", timeout=5).json()["routing_version"] <= before:
        assert time.monotonic() < deadline, "the policy never reached the gateway"
        time.sleep(0.02)
    time.sleep(0.5)  # every worker, not only the one that answered

    statuses: list[int] = []
    refusals: list[httpx.Response] = []
    lock = threading.Lock()
    run = 2.5

    def hammer(end: float) -> None:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            while time.monotonic() < end:
                r = client.post(
                    "/api/v1/chat/completions",
                    json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                    headers={"authorization": f"Bearer {secret}"},
                )
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 429 and len(refusals) < 5:
                        refusals.append(r)

    end = time.monotonic() + run
    threads = [threading.Thread(target=hammer, args=(end,)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    admitted = statuses.count(200)
    # The burst, then one a second: 5 + 2 in 2.5 s (+1 if the run straddles a third second).
    assert admitted in (7, 8), f"{admitted} admitted of {len(statuses)}"
    assert set(statuses) == {200, 429}
    refused = refusals[0]
    assert refused.json()["error"]["type"] == "rate_limit"
    assert refused.headers["x-ratelimit-limit"] == "60"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 1
    assert int(refused.headers["x-ratelimit-reset"]) <= 5
