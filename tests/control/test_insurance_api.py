"""The account's insurance API over a real store, fed through the real metering path: usage
events with verdicts go through the control plane's consumer (or its handler), and each account
reads, with its own API key, its claims (filters, pages), their aggregates, the claims of one
generation, its content-retention setting and the JSONL export of its redacted cases. Another
account's key never sees any of it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from bus.helpers import eventually
from factories import usage_event
from muxgate.bus import LocalBus
from muxgate.control.plane import ControlPlane
from muxgate.store import Store, accounts, catalog, keys, ledger, policies, settings
from muxgate.wire import Answer, Case, RoutingSnapshot, UsageEvent, Verdict
from waiting import HANG

ADMIN_TOKEN = "admin-test-token"
NOW = datetime.now(UTC).replace(microsecond=0)
Client = AsyncTestClient[Litestar]


class Accounts(msgspec.Struct):
    alice: dict[str, str]
    bob: dict[str, str]


@pytest.fixture
async def plane(store: Store, tmp_path: Path) -> AsyncIterator[ControlPlane]:
    bus = LocalBus(tmp_path / "bus")
    control = ControlPlane(store, bus, bus, admin_token=ADMIN_TOKEN, job_interval=3600)
    await control.start()
    try:
        yield control
    finally:
        await control.stop()
        bus.close()


@pytest.fixture
async def client(plane: ControlPlane) -> AsyncIterator[Client]:
    async with AsyncTestClient(plane.app) as test_client:
        yield test_client


@pytest.fixture
async def keyed(store: Store) -> Accounts:
    """Two funded accounts with a key each: `{"Authorization": "Bearer …"}` headers."""
    await settings.update_settings(store, trial_credit_nano=0)
    headers: dict[str, dict[str, str]] = {}
    for account in ("alice", "bob"):
        await accounts.create_account(store, account)
        await ledger.add_entry(store, account, "top_up", 10**9)
        _, secret = await keys.create_key(store, account_id=account, key_id=f"{account}-key")
        headers[account] = {"Authorization": f"Bearer {secret}"}
    return Accounts(alice=headers["alice"], bob=headers["bob"])


def claim(
    request_id: str,
    account: str,
    *verdicts: tuple[str, str, int],
    ago: timedelta = timedelta(hours=1),
    cost: int = 10_000,
    **changes: Any,
) -> UsageEvent:
    return usage_event(
        request_id,
        created_ms=int((NOW - ago).timestamp() * 1000),
        account_id=account,
        key_id=f"{account}-key",
        cost_nano_usd=cost,
        insurance=[
            Verdict(rule_id=rule, trigger=trigger, reason=f"{trigger} seen", credit_nano=credit)
            for rule, trigger, credit in verdicts
        ],
        **changes,
    )


def decimal_json(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return json.loads(response.content, parse_float=Decimal)


LATENCY = ("high-latency", "high_latency", 5_000)
FAILED = ("failed-stream", "failed_stream", 10_000)
CONTENT = ("unsatisfactory-content", "unsatisfactory_content", 10_000)


async def test_claims_are_listed_filtered_and_paged(
    plane: ControlPlane, client: Client, keyed: Accounts
) -> None:
    await plane.record(
        [
            claim("a1", "alice", LATENCY, ago=timedelta(days=2), ttft_ms=7_000.4),
            claim("a2", "alice", FAILED, ago=timedelta(days=1)),
            claim("a3", "alice", LATENCY, CONTENT, ago=timedelta(hours=3), model="x/other"),
            claim("a4", "alice", LATENCY, ago=timedelta(hours=2)),
            claim("a5", "alice", LATENCY, ago=timedelta(days=45)),  # outside the default range
            claim("b1", "bob", FAILED),
        ]
    )
    body = decimal_json(
        await client.get("/api/v1/management/insurance/claims", headers=keyed.alice)
    )
    assert body["success"] is True
    listed = body["data"]["claims"]
    # Newest request first; a request's claims in reverse booking order.
    assert [(c["request_id"], c["rule"]) for c in listed] == [
        ("a4", "high-latency"),
        ("a3", "unsatisfactory-content"),
        ("a3", "high-latency"),
        ("a2", "failed-stream"),
        ("a1", "high-latency"),
    ]
    assert body["data"]["next_cursor"] is None
    first = next(c for c in listed if c["request_id"] == "a1")
    assert first == {
        "request_id": "a1",
        "rule": "high-latency",
        "trigger": "high_latency",
        "reason": "high_latency seen",
        "model": "openai/gpt-4o-mini",
        "channel": "direct",
        "key_id": "alice-key",
        "created_at": first["created_at"],
        "booked_at": first["booked_at"],
        "requested": Decimal("0.000005"),
        "credit": Decimal("0.000005"),
        "capped": False,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost": Decimal("0.00001"),
        "latency": 7000,
        "throughput": 125.0,
        "finish_reason": "stop",
    }
    # The credits of a3 add up to at most its cost: the engine's split, booked as sent.
    assert sum(c["credit"] for c in listed if c["request_id"] == "a3") == Decimal("0.000015")

    async def ids(**params: Any) -> list[str]:
        r = await client.get(
            "/api/v1/management/insurance/claims", params=params, headers=keyed.alice
        )
        return [c["request_id"] for c in decimal_json(r)["data"]["claims"]]

    assert await ids(trigger="failed_stream") == ["a2"]
    assert await ids(model="x/other") == ["a3", "a3"]
    since = (NOW - timedelta(days=50)).isoformat()
    assert await ids(**{"from": since, "to": (NOW - timedelta(days=40)).isoformat()}) == ["a5"]
    assert len(await ids(**{"from": since})) == 6

    # Pages of two, each continuing where the last stopped.
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = decimal_json(
            await client.get(
                "/api/v1/management/insurance/claims", params=params, headers=keyed.alice
            )
        )["data"]
        seen += [c["request_id"] for c in page["claims"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["a4", "a3", "a3", "a2", "a1"]

    # Bob sees his own claim only.
    bob = decimal_json(await client.get("/api/v1/management/insurance/claims", headers=keyed.bob))
    assert [c["request_id"] for c in bob["data"]["claims"]] == ["b1"]

    for params, status in (
        ({"cursor": "nonsense"}, 400),
        ({"from": "2030-01-01T00:00:00"}, 400),  # no zone
        ({"from": (NOW - timedelta(days=400)).isoformat()}, 400),  # over 366 days
        ({"limit": 0}, 400),
        ({"limit": 1001}, 400),
        ({"trigger": "slowness"}, 400),
    ):
        refused = await client.get(
            "/api/v1/management/insurance/claims", params=params, headers=keyed.alice
        )
        assert refused.status_code == status, (params, refused.text)
    for headers in ({}, {"Authorization": "Bearer sk-mx-unknown"}):
        denied = await client.get("/api/v1/management/insurance/claims", headers=headers)
        assert denied.status_code == 401


async def test_the_summary_aggregates_by_day_trigger_and_model(
    plane: ControlPlane, store: Store, client: Client, keyed: Accounts
) -> None:
    await policies.update_insurance_rule(store, "failed-stream", cap_per_day_nano=15_000)
    day = NOW.replace(hour=12, minute=0, second=0) - timedelta(days=1)
    await plane.record(
        [
            claim("a1", "alice", FAILED, ago=NOW - day),
            claim("a2", "alice", FAILED, ago=NOW - day - timedelta(minutes=1)),  # capped: 5000
            claim("a3", "alice", LATENCY, ago=NOW - day - timedelta(days=1), model="x/other"),
            claim("b1", "bob", FAILED, ago=NOW - day),
        ]
    )
    params = {
        "from": (day - timedelta(days=1)).isoformat(),
        "to": (day + timedelta(days=3)).isoformat(),
    }
    data = decimal_json(
        await client.get("/api/v1/management/insurance/summary", params=params, headers=keyed.alice)
    )["data"]
    assert data["total_compensation"] == Decimal("0.00002")
    assert data["count"] == 3
    assert data["average_per_claim"] == Decimal("0.000006667")
    assert data["average_per_day"] == Decimal("0.000005")  # four days
    first_day = day.date().isoformat()
    next_day = (day + timedelta(days=1)).date().isoformat()
    assert data["series"] == [
        {"date": first_day, "count": 2, "compensation": Decimal("0.000015")},
        {"date": next_day, "count": 1, "compensation": Decimal("0.000005")},
    ]
    assert data["by_trigger"] == [
        {"trigger": "failed_stream", "count": 2, "compensation": Decimal("0.000015")},
        {"trigger": "high_latency", "count": 1, "compensation": Decimal("0.000005")},
    ]
    assert data["by_model"] == [
        {"model": "openai/gpt-4o-mini", "count": 2, "compensation": Decimal("0.000015")},
        {"model": "x/other", "count": 1, "compensation": Decimal("0.000005")},
    ]
    one = decimal_json(
        await client.get(
            "/api/v1/management/insurance/summary",
            params={**params, "trigger": "high_latency"},
            headers=keyed.alice,
        )
    )["data"]
    assert (one["count"], one["by_model"][0]["model"]) == (1, "x/other")
    bob = decimal_json(await client.get("/api/v1/management/insurance/summary", headers=keyed.bob))[
        "data"
    ]
    assert (bob["count"], bob["total_compensation"]) == (1, Decimal("0.00001"))
    quiet = {
        "from": (NOW - timedelta(days=50)).isoformat(),
        "to": (NOW - timedelta(days=40)).isoformat(),
    }
    empty = decimal_json(
        await client.get("/api/v1/management/insurance/summary", params=quiet, headers=keyed.alice)
    )["data"]
    assert (empty["count"], empty["total_compensation"], empty["average_per_claim"]) == (0, 0, 0)
    assert empty["series"] == empty["by_trigger"] == empty["by_model"] == []


async def test_the_generation_record_lists_its_claims(
    plane: ControlPlane, client: Client, keyed: Accounts
) -> None:
    await plane.record([claim("a1", "alice", LATENCY, CONTENT), claim("a2", "alice")])
    record = decimal_json(
        await client.get("/api/v1/management/generation", params={"id": "a1"}, headers=keyed.alice)
    )
    assert record["claims"] == [
        {
            "rule": "high-latency",
            "trigger": "high_latency",
            "reason": "high_latency seen",
            "credit": Decimal("0.000005"),
        },
        {
            "rule": "unsatisfactory-content",
            "trigger": "unsatisfactory_content",
            "reason": "unsatisfactory_content seen",
            "credit": Decimal("0.00001"),
        },
    ]
    plain = decimal_json(
        await client.get("/api/v1/management/generation", params={"id": "a2"}, headers=keyed.alice)
    )
    assert plain["claims"] == []
    hidden = await client.get(
        "/api/v1/management/generation", params={"id": "a1"}, headers=keyed.bob
    )
    assert hidden.status_code == 404


async def test_the_account_sets_content_retention_itself(
    plane: ControlPlane, store: Store, client: Client, keyed: Accounts
) -> None:
    path = "/api/v1/management/insurance/settings"
    assert decimal_json(await client.get(path, headers=keyed.alice))["data"] == {
        "retain_content": False
    }
    version = await plane.snapshots.current_version()
    updated = await client.put(path, json={"retain_content": True}, headers=keyed.alice)
    assert updated.json() == {"success": True, "data": {"retain_content": True}}
    assert (await accounts.get_account(store, "alice")).retain_content
    assert not (await accounts.get_account(store, "bob")).retain_content
    # Published at once: the gateway starts sending alice's cases.
    assert await plane.snapshots.current_version() == (version or 0) + 1
    refused = await client.put(path, json={"retain_content": "yes"}, headers=keyed.alice)
    assert refused.status_code == 400
    anonymous = await client.put(path, json={"retain_content": True})
    assert anonymous.status_code == 401


def case(text: str) -> Case:
    request = {"messages": [{"role": "user", "content": f"{text}, mail me at a@example.com"}]}
    return Case(
        surface="chat",
        request=msgspec.Raw(msgspec.json.encode(request)),
        answer=Answer(text="Call +1 (555) 123-4567"),
    )


async def test_cases_export_as_jsonl_to_their_account_only(
    plane: ControlPlane, store: Store, client: Client, keyed: Accounts
) -> None:
    for account in ("alice", "bob"):
        await accounts.update_account(store, account, retain_content=True)
    await plane.record(
        [
            claim("a1", "alice", FAILED, ago=timedelta(hours=3), case=case("first")),
            claim("a2", "alice", LATENCY, ago=timedelta(hours=2), case=case("second")),
            claim("a3", "alice", LATENCY, ago=timedelta(hours=1)),  # no case sent
            claim("b1", "bob", FAILED, case=case("bob's")),
        ]
    )
    exported = await client.get("/api/v1/insurance/cases?format=jsonl", headers=keyed.alice)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line, parse_float=Decimal) for line in exported.text.splitlines()]
    assert [c["request_id"] for c in lines] == ["a1", "a2"]
    first = lines[0]
    assert first["request"] == {
        "messages": [{"role": "user", "content": "first, mail me at [EMAIL]"}]
    }
    assert first["answer"] == {"text": "Call [PHONE]", "reasoning": "", "tool_calls": []}
    assert first["claims"] == [
        {
            "rule": "failed-stream",
            "trigger": "failed_stream",
            "reason": "failed_stream seen",
            "requested": Decimal("0.00001"),
            "credit": Decimal("0.00001"),
        }
    ]
    assert first["measurements"]["cost"] == Decimal("0.00001")
    assert first["measurements"]["ttft_ms"] == Decimal("12.5")
    assert (first["model"], first["surface"], first["judged_at"]) == (
        "openai/gpt-4o-mini",
        "chat",
        None,
    )
    assert "example.com" not in exported.text

    as_json = await client.get(
        "/api/v1/insurance/cases",
        params={"format": "json", "from": (NOW - timedelta(hours=2, minutes=30)).isoformat()},
        headers=keyed.alice,
    )
    assert [c["request_id"] for c in as_json.json()] == ["a2"]
    bob = await client.get("/api/v1/insurance/cases", headers=keyed.bob)
    assert [json.loads(line)["request_id"] for line in bob.text.splitlines()] == ["b1"]
    assert (await client.get("/api/v1/insurance/cases")).status_code == 401
    bad = await client.get("/api/v1/insurance/cases?format=csv", headers=keyed.alice)
    assert bad.status_code == 400


async def test_verdicts_travel_the_consumer_path_once(
    plane: ControlPlane, client: Client, keyed: Accounts
) -> None:
    """Usage lines on the bus, consumed and acknowledged by the control plane: each verdict
    is credited once, however often the batch is delivered."""
    lines = b"".join(
        msgspec.json.encode(e) + b"\n"
        for e in (claim("a1", "alice", FAILED), claim("a2", "alice", LATENCY, CONTENT))
    )
    await plane.usage.append_usage(lines)
    await plane.usage.append_usage(lines)  # the same batch delivered again

    async def credited() -> list[Any]:
        r = await client.get("/api/v1/management/insurance/claims", headers=keyed.alice)
        return list(decimal_json(r)["data"]["claims"])

    await eventually(lambda: _count(credited, 3), within=HANG)
    balance = decimal_json(
        await client.get("/api/v1/management/payg/balance", headers=keyed.alice)
    )["data"]
    # Two requests charged (0.00002), 0.000025 credited as bonus.
    assert balance["bonus_credits"] == Decimal("0.000025")
    assert balance["top_up_credits"] == Decimal("0.99998")
    # Once more, followed by a new request: when that one is booked, the replay was read.
    await plane.usage.append_usage(lines)
    await plane.usage.append_usage(msgspec.json.encode(claim("a9", "alice", FAILED)) + b"\n")
    await eventually(lambda: _count(credited, 4), within=HANG)
    assert sorted(c["request_id"] for c in await credited()) == ["a1", "a2", "a2", "a9"]


async def _count(fetch: Any, expected: int) -> bool:
    return len(await fetch()) == expected


async def test_the_plane_republishes_when_a_median_moves(plane: ControlPlane, store: Store) -> None:
    """Relative `high_latency` rules judge against a recent median: the plane recompiles when
    a model gains one or it moves by more than 10 %, and not for noise."""
    await catalog.create_model(store, "openai/gpt-4o-mini")

    def streamed(prefix: str, ttft: float, count: int = 25) -> list[UsageEvent]:
        created = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp() * 1000)
        return [
            usage_event(f"{prefix}{i}", created_ms=created, stream=True, ttft_ms=ttft)
            for i in range(count)
        ]

    async def published_median() -> float | None:
        version = await plane.snapshots.current_version()
        assert version is not None
        data = await plane.snapshots.fetch_snapshot(version)
        assert data is not None
        [model] = msgspec.msgpack.decode(data, type=RoutingSnapshot).models
        return model.ttft_p50_ms

    assert not await plane.refresh_medians()  # no samples, nothing to publish
    await plane.record(streamed("a", 400.0))
    assert await plane.refresh_medians()
    assert await published_median() == 400.0
    await plane.record(streamed("b", 420.0, count=30))  # median 420: within 10 %
    assert not await plane.refresh_medians()
    await plane.record(streamed("c", 900.0, count=60))
    assert await plane.refresh_medians()
    assert await published_median() == 900.0
