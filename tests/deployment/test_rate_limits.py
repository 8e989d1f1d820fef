"""Rate limits hold across worker processes: four workers sharing one Redis admit exactly what
one process would — for a 60-a-minute key its burst, then one a second; for a token limit the
tokens it allows, however the requests are spread — and say so in the headers of the 429s."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from deployment.conftest import Deploy
from deployment.helpers import MODEL

LONG = "test/long"


def _limited_key(deploy: Deploy, **policy: Any) -> tuple[str, str]:
    """A key under a policy of its own, once every worker has the routing table that says so.
    Returns the gateway's URL and the key's secret. Models: `MODEL` (one-token answers) and
    `LONG` (answers of a hundred words)."""
    d = deploy(workers=(4,))
    d.admin.catalog(d.mock_url)
    d.admin.call("POST", "/models", {"slug": LONG})
    channel = {"id": "long-mock", "model": LONG, "provider": "mock", "upstream_model": "long"}
    d.admin.call("POST", "/channels", channel)
    d.admin.account("acme")
    key_id, secret = d.admin.key("acme")
    gateway = d.gateways[0]
    before = httpx.get(f"{gateway.url}/healthz", timeout=5).json()["routing_version"]
    d.admin.call(
        "POST",
        "/rate-limit-policies",
        {"id": "tight", "applies_to": "key", "subjects": [key_id], **policy},
    )
    deadline = time.monotonic() + 5
    while httpx.get(f"{gateway.url}/healthz", timeout=5).json()["routing_version"] <= before:
        assert time.monotonic() < deadline, "the policy never reached the gateway"
        time.sleep(0.02)
    time.sleep(0.5)  # every worker, not only the one that answered
    return gateway.url, secret


def _hammer(
    url: str, secret: str, body: dict[str, Any], run: float
) -> tuple[list[httpx.Response], float]:
    """Twelve clients asking as fast as they can for `run` seconds. Returns every answer and
    how long the hammering lasted, from the first request to the last answer."""
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def hammer(end: float) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while time.monotonic() < end:
                r = client.post(
                    "/api/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {secret}"},
                )
                with lock:
                    answers.append(r)

    start = time.monotonic()
    threads = [threading.Thread(target=hammer, args=(start + run,)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, time.monotonic() - start


def test_four_workers_admit_what_one_process_would(deploy: Deploy) -> None:
    url, secret = _limited_key(deploy, rpm=60, burst=5)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    answers, _ = _hammer(url, secret, body, 2.5)
    statuses = [r.status_code for r in answers]
    admitted = statuses.count(200)
    # The burst, then one a second: 5 + 2 in 2.5 s (+1 if the run straddles a third second).
    assert admitted in (7, 8), f"{admitted} admitted of {len(statuses)}"
    assert set(statuses) == {200, 429}
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["error"]["type"] == "rate_limit"
    assert refused.headers["x-ratelimit-limit"] == "60"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 1
    assert int(refused.headers["x-ratelimit-reset"]) <= 5


def test_four_workers_share_one_token_limit(deploy: Deploy) -> None:
    # 6 000 tokens a minute (100 a second, the whole minute's worth at once). Each request
    # reserves its prompt and 40 answer tokens, and the answer uses all 40: what is settled
    # is about what was reserved.
    url, secret = _limited_key(deploy, tpm=6000)
    body = {"model": LONG, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 40}
    answers, lasted = _hammer(url, secret, body, 3.0)
    billed = [r.json()["usage"]["total_tokens"] for r in answers if r.status_code == 200]
    largest = max(billed)
    assert {r.json()["usage"]["completion_tokens"] for r in answers if r.status_code == 200} == {40}
    # What one process would allow: the burst and what refilled meanwhile, and one request more
    # at the edge — four processes each on their own would have admitted four times it. Fewer
    # by what the bucket kept back (less than a request) and what refilled while the first
    # request was on its way and the last ones came back (a few percent on a slow machine).
    allowed = 6000 + 100 * lasted
    assert 0.95 * allowed - largest <= sum(billed) <= allowed + largest, (
        f"{sum(billed)} tokens in {len(billed)} requests over {lasted:.2f} s"
    )
    refused = [r for r in answers if r.status_code == 429]
    assert refused, "the limit never refused"
    error = refused[0].json()["error"]
    assert error["type"] == "rate_limit"
    assert "6000 tokens per minute" in error["message"], error["message"]
