"""Rate limits hold across worker processes: four workers sharing one Redis admit exactly what
one process would — for a 60-a-minute key its burst, then one a second; for a token limit the
tokens it allows, however the requests are spread — and say so in the headers of the 429s."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import httpx

from deployment.conftest import Deploy
from deployment.helpers import MODEL
from waiting import HANG

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
    gateway.wait_routing(before + 1)  # every worker, not only one that answers /healthz
    return gateway.url, secret


class Answer:
    """One request of a hammering: the answer, when it was sent and when it came back."""

    def __init__(self, response: httpx.Response, sent: float, received: float) -> None:
        self.response, self.sent, self.received = response, sent, received

    @property
    def status_code(self) -> int:
        return self.response.status_code


def _hammer(url: str, secret: str, body: dict[str, Any], run: float) -> tuple[list[Answer], float]:
    """Twelve clients asking as fast as they can for `run` seconds, and on until the limit has
    refused at least once (a busy machine may not reach it in time). Returns every answer and
    how long the hammering lasted, from the first request to the last answer."""
    answers: list[Answer] = []
    lock = threading.Lock()
    refused = threading.Event()

    def hammer(end: float) -> None:
        with httpx.Client(base_url=url, timeout=HANG) as client:
            while ((sent := time.monotonic()) < end or not refused.is_set()) and sent < hang:
                r = client.post(
                    "/api/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {secret}"},
                )
                if r.status_code == 429:
                    refused.set()
                with lock:
                    answers.append(Answer(r, sent, time.monotonic()))

    start = time.monotonic()
    hang = start + HANG
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
    statuses = [a.status_code for a in answers]
    admitted = statuses.count(200)
    # The burst, then one a second from the first admission on. That admission happened after
    # the first request was sent and before the first 200 came back; the clients kept asking
    # until the last request was sent, and every admission was over when the last answer came
    # back. On a busy machine these instants drift apart, so the bounds come from them, not
    # from the 2.5 s asked for.
    first_admitted = min(a.received for a in answers if a.status_code == 200)
    first_sent = min(a.sent for a in answers)
    last_sent = max(a.sent for a in answers)
    last_received = max(a.received for a in answers)
    fewest = 5 + math.floor(last_sent - first_admitted)
    most = 5 + math.floor(last_received - first_sent)
    assert fewest <= admitted <= most, f"{admitted} admitted of {len(statuses)}"
    assert set(statuses) == {200, 429}
    refused = next(a.response for a in answers if a.status_code == 429)
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
    assert any(a.status_code == 429 for a in answers), "the limit never refused"
    served = [a.response.json()["usage"] for a in answers if a.status_code == 200]
    billed = [usage["total_tokens"] for usage in served]
    largest = max(billed)
    assert {usage["completion_tokens"] for usage in served} == {40}
    # What one process would allow: the burst and what refilled meanwhile, and one request more
    # at the edge — four processes each on their own would have admitted four times it.
    allowed = 6000 + 100 * lasted
    assert sum(billed) <= allowed + largest, f"{sum(billed)} tokens in {lasted:.2f} s"
    # And no fewer than the bucket gave out by the last refusal: it was full when the first
    # request was admitted, refilled 100 a second, and held less than a request (and the
    # workers' unused leases, 5 each) when it refused. On a busy machine the clients may not
    # keep it empty, so the bound runs to that refusal, not to the end of the run.
    first_admitted = min(a.received for a in answers if a.status_code == 200)
    last_refused = max(a.sent for a in answers if a.status_code == 429)
    given = 6000 + 100 * (last_refused - first_admitted)
    assert sum(billed) >= given - 2 * largest, (
        f"{sum(billed)} tokens in {len(billed)} requests; {given:.0f} given by the last refusal"
    )
    refused = [a.response for a in answers if a.status_code == 429]
    error = refused[0].json()["error"]
    assert error["type"] == "rate_limit"
    assert "6000 tokens per minute" in error["message"], error["message"]
