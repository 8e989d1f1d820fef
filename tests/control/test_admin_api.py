"""The admin API over a real store: auth, CRUD, error bodies with field paths, balances,
one-time key secrets and the routing-change notifications."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from muxgate import wire
from muxgate.control import compile_snapshot
from muxgate.store import Store, keys

Client = AsyncTestClient[Litestar]


def error_of(body: Any) -> dict[str, Any]:
    assert set(body) == {"error"}, body
    detail: dict[str, Any] = body["error"]
    assert set(detail) == {"code", "type", "message", "field"}
    return detail


async def test_the_admin_token_is_required(app: Litestar) -> None:
    async with AsyncTestClient(app) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            response = await anonymous.get("/admin/v1/accounts", headers=headers)
            assert response.status_code == 401
            assert error_of(response.json())["code"] == "401"
        # The schema and the docs are public: they hold no data.
        assert (await anonymous.get("/admin/v1/schema/openapi.json")).status_code == 200
        assert (await anonymous.get("/admin/v1/schema")).status_code == 200


async def test_accounts_balances_and_ledger(client: Client, changes: Any) -> None:
    created = await client.post("/admin/v1/accounts", json={"id": "acme", "name": "Acme"})
    assert created.status_code == 201
    balance = created.json()["balance"]
    assert balance == {
        "total": "5",
        "purchased": "0",
        "bonus": "5",
        "total_nano": 5_000_000_000,
        "purchased_nano": 0,
        "bonus_nano": 5_000_000_000,
    }
    assert changes.count == 1
    top_up = await client.post(
        "/admin/v1/accounts/acme/ledger", json={"kind": "top_up", "amount": "10.000000001"}
    )
    assert top_up.status_code == 201
    assert top_up.json()["purchased_nano"] == 10_000_000_001
    assert changes.count == 2
    account = (await client.get("/admin/v1/accounts/acme")).json()
    assert account["balance"]["total"] == "15.000000001"
    assert not account["effectively_blocked"]
    entries = (await client.get("/admin/v1/accounts/acme/ledger")).json()
    assert [e["kind"] for e in entries] == ["top_up", "trial"]
    limited = await client.get("/admin/v1/accounts/acme/ledger", params={"limit": 1})
    assert len(limited.json()) == 1

    blocked = await client.patch("/admin/v1/accounts/acme", json={"blocked": True})
    assert blocked.json()["effectively_blocked"]
    assert blocked.json()["name"] == "Acme"


async def test_ledger_entries_that_overdraw_bonus_are_refused(client: Client) -> None:
    await client.post("/admin/v1/accounts", json={"id": "acme"})
    response = await client.post(
        "/admin/v1/accounts/acme/ledger",
        json={"kind": "adjustment", "amount": "-6", "bucket": "bonus"},
    )
    assert response.status_code == 422
    assert error_of(response.json())["field"] == "amount"
    refund = await client.post(
        "/admin/v1/accounts/acme/ledger", json={"kind": "refund", "amount": "-1"}
    )
    assert refund.status_code == 422
    ghost = await client.post(
        "/admin/v1/accounts/ghost/ledger", json={"kind": "top_up", "amount": "1"}
    )
    assert ghost.status_code == 404


async def test_errors_name_the_field(client: Client) -> None:
    bad_id = await client.post("/admin/v1/accounts", json={"id": "has space"})
    assert bad_id.status_code == 400
    assert error_of(bad_id.json())["field"] == "id"
    await client.post("/admin/v1/accounts", json={"id": "acme"})
    dup = await client.post("/admin/v1/accounts", json={"id": "acme"})
    assert dup.status_code == 409
    assert error_of(dup.json()) == {
        "code": "409",
        "type": "conflict",
        "message": "account 'acme' already exists",
        "field": "id",
    }
    missing = await client.get("/admin/v1/keys/ghost")
    assert missing.status_code == 404
    assert error_of(missing.json())["type"] == "not_found"
    await client.post("/admin/v1/providers", json={"id": "p", "base_url": "https://x"})
    await client.post("/admin/v1/models", json={"slug": "a/b"})
    price = await client.post(
        "/admin/v1/channels",
        json={
            "id": "c",
            "model": "a/b",
            "provider": "p",
            "upstream_model": "b",
            "price": {"prompt": "-1"},
        },
    )
    assert price.status_code == 400
    assert error_of(price.json())["field"] == "price.prompt"
    unknown = await client.post(
        "/admin/v1/channels",
        json={"id": "c", "model": "a/zzz", "provider": "p", "upstream_model": "b"},
    )
    assert unknown.status_code == 422
    assert error_of(unknown.json())["field"] == "model"
    body = await client.post("/admin/v1/keys", content=b"{not json")
    assert body.status_code == 400
    assert error_of(body.json())["code"] == "400"


async def test_key_secret_is_shown_once(client: Client, store: Store, changes: Any) -> None:
    await client.post("/admin/v1/accounts", json={"id": "acme"})
    created = await client.post(
        "/admin/v1/keys",
        json={"account": "acme", "name": "ci", "models": ["openai/*"], "credit_limit": "2.5"},
    )
    assert created.status_code == 201
    secret = created.json()["secret"]
    key = created.json()["key"]
    assert key["hint"] == f"sk-mx-...{secret[-4:]}"
    assert key["credit_limit_nano"] == 2_500_000_000
    assert "digest" not in key
    stored = await keys.get_key(store, key["id"])
    assert stored.digest == keys.digest_of(secret)
    for response in (
        await client.get(f"/admin/v1/keys/{key['id']}"),
        await client.get("/admin/v1/keys", params={"account": "acme"}),
    ):
        assert secret not in response.text
        assert stored.digest not in response.text

    rotated = await client.post(f"/admin/v1/keys/{key['id']}/rotate")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != secret
    disabled = await client.patch(f"/admin/v1/keys/{key['id']}", json={"enabled": False})
    assert not disabled.json()["usable"]
    cleared = await client.patch(f"/admin/v1/keys/{key['id']}", json={"credit_limit": None})
    assert cleared.json()["credit_limit"] is None
    assert cleared.json()["name"] == "ci"
    revoked = await client.post(f"/admin/v1/keys/{key['id']}/revoke")
    assert revoked.json()["revoked_at"] is not None
    again = await client.patch(f"/admin/v1/keys/{key['id']}", json={"enabled": True})
    assert again.status_code == 409
    assert changes.count == 6  # account, create, rotate, 2 updates, revoke


async def test_catalog_crud_with_slugs_in_the_path(client: Client, changes: Any) -> None:
    provider = await client.post(
        "/admin/v1/providers",
        json={"id": "openai", "base_url": "https://api.openai.com/v1", "credential": "sk-up"},
    )
    assert provider.status_code == 201
    assert provider.json()["credential_stored"]
    assert "sk-up" not in provider.text
    model = await client.post(
        "/admin/v1/models", json={"slug": "openai/gpt-4o-mini", "aliases": ["mini"]}
    )
    assert model.status_code == 201
    fetched = await client.get("/admin/v1/models/openai/gpt-4o-mini")
    assert fetched.json()["aliases"] == ["mini"]
    patched = await client.patch(
        "/admin/v1/models/openai/gpt-4o-mini", json={"context_length": 128000}
    )
    assert patched.json()["context_length"] == 128000
    clash = await client.post("/admin/v1/models", json={"slug": "other/m", "aliases": ["mini"]})
    assert clash.status_code == 409
    assert error_of(clash.json())["field"] == "aliases[0]"
    channel = await client.post(
        "/admin/v1/channels",
        json={
            "id": "direct",
            "model": "openai/gpt-4o-mini",
            "provider": "openai",
            "upstream_model": "gpt-4o-mini",
            "price": {"prompt": "0.15", "completion": "0.6"},
        },
    )
    assert channel.status_code == 201
    assert channel.json()["price"] == {"prompt": "0.15", "completion": "0.6", "cached": "0.15"}
    listed = await client.get("/admin/v1/channels", params={"model": "openai/gpt-4o-mini"})
    assert [c["id"] for c in listed.json()] == ["direct"]
    in_use = await client.delete("/admin/v1/models/openai/gpt-4o-mini")
    assert in_use.status_code == 409
    assert (await client.delete("/admin/v1/channels/direct")).status_code == 204
    assert (await client.delete("/admin/v1/models/openai/gpt-4o-mini")).status_code == 204
    assert (await client.get("/admin/v1/models/openai/gpt-4o-mini")).status_code == 404
    assert changes.count == 6


async def test_model_timeouts_are_the_default_of_channels_without_their_own(
    client: Client, store: Store
) -> None:
    await client.post("/admin/v1/providers", json={"id": "p", "base_url": "https://p.test/v1"})
    created = await client.post(
        "/admin/v1/models", json={"slug": "a/b", "timeouts": {"first_byte_ms": 5000}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["timeouts"] == {"first_byte_ms": 5000, "idle_ms": None, "total_ms": None}
    path = "/admin/v1/models/a/b"
    tuned = {"first_byte_ms": None, "idle_ms": 30000, "total_ms": 90000}
    # Like a channel's, a model's timeouts are replaced as a whole; other fields keep them.
    patched = await client.patch(path, json={"timeouts": {"idle_ms": 30000, "total_ms": 90000}})
    assert patched.json()["timeouts"] == tuned
    assert (await client.patch(path, json={"context_length": 1000})).json()["timeouts"] == tuned
    assert (await client.get(path)).json()["timeouts"] == tuned
    for bad in (0, 86_400_001, 2.5):
        refused = await client.patch(path, json={"timeouts": {"idle_ms": bad}})
        assert refused.status_code == 400
        assert error_of(refused.json())["field"] == "timeouts.idle_ms"
    assert (await client.get(path)).json()["timeouts"] == tuned

    channel = await client.post(
        "/admin/v1/channels",
        json={"id": "c", "model": "a/b", "provider": "p", "upstream_model": "b"},
    )
    unset = {"first_byte_ms": None, "idle_ms": None, "total_ms": None}
    assert channel.json()["timeouts"] == unset
    [compiled] = (await compile_snapshot(store)).models[0].channels
    assert compiled.timeouts == wire.Timeouts(first_byte_ms=60000, idle_ms=30000, total_ms=90000)
    own = await client.patch("/admin/v1/channels/c", json={"timeouts": {"first_byte_ms": 2000}})
    assert own.json()["timeouts"] == {"first_byte_ms": 2000, "idle_ms": None, "total_ms": None}
    [compiled] = (await compile_snapshot(store)).models[0].channels
    assert compiled.timeouts == wire.Timeouts(first_byte_ms=2000, idle_ms=30000, total_ms=90000)
    cleared = await client.patch("/admin/v1/channels/c", json={"timeouts": {"first_byte_ms": None}})
    assert cleared.json()["timeouts"] == unset
    await client.patch(path, json={"timeouts": {}})
    [compiled] = (await compile_snapshot(store)).models[0].channels
    assert compiled.timeouts == wire.Timeouts(first_byte_ms=60000, idle_ms=120000, total_ms=600000)


async def test_insurance_rules_are_validated_per_trigger_and_published(
    client: Client, changes: Any
) -> None:
    defaults = (await client.get("/admin/v1/insurance-rules")).json()
    assert {r["id"]: (r["trigger"], r["payout_percent"]) for r in defaults} == {
        "failed-stream": ("failed_stream", 100),
        "high-latency": ("high_latency", 50),
        "low-throughput": ("low_throughput", 30),
        "unsatisfactory-content": ("unsatisfactory_content", 100),
    }
    latency = next(r for r in defaults if r["id"] == "high-latency")
    assert latency["params"] == {"ttft_ms": 5000, "p50_multiple": 3.0}
    assert (latency["cap_per_day"], latency["cap_per_request"], latency["min_cost"]) == (
        "10",
        None,
        "0",
    )

    rule = await client.post(
        "/admin/v1/insurance-rules",
        json={
            "id": "slow",
            "trigger": "low_throughput",
            "params": {"min_tokens_per_second": 5},
            "accounts": ["acme"],
            "cap_per_day": "3",
            "min_cost": "0.0001",
        },
    )
    assert rule.status_code == 201, rule.text
    body = rule.json()
    assert body["params"] == {"min_tokens_per_second": 5.0, "min_output_tokens": 50}
    assert (body["accounts"], body["cap_per_day"], body["min_cost"]) == (["acme"], "3", "0.0001")
    assert changes.count == 1

    # Parameters merge over the current ones; None removes one (its default comes back).
    merged = await client.patch(
        "/admin/v1/insurance-rules/slow", json={"params": {"min_output_tokens": 500}}
    )
    assert merged.json()["params"] == {"min_tokens_per_second": 5.0, "min_output_tokens": 500}
    reset = await client.patch(
        "/admin/v1/insurance-rules/slow", json={"params": {"min_output_tokens": None}}
    )
    assert reset.json()["params"]["min_output_tokens"] == 50
    # A new trigger starts its parameters afresh.
    moved = await client.patch(
        "/admin/v1/insurance-rules/slow", json={"trigger": "failed_stream", "payout_percent": 10}
    )
    assert (moved.json()["params"], moved.json()["payout_percent"]) == ({}, 10)
    assert changes.count == 4
    assert (await client.delete("/admin/v1/insurance-rules/slow")).status_code == 204
    assert changes.count == 5

    refused = [
        # (body, status, field)
        ({"trigger": "low_throughput"}, 422, "params.min_tokens_per_second"),
        ({"trigger": "high_latency"}, 422, "params.ttft_ms"),
        ({"trigger": "high_latency", "params": {"ttft_ms": 0}}, 400, "params.ttft_ms"),
        ({"trigger": "high_latency", "params": {"p50_multiple": 1}}, 400, "params.p50_multiple"),
        ({"trigger": "failed_stream", "params": {"ttft_ms": 9}}, 422, "params.ttft_ms"),
        ({"trigger": "hallucination", "params": {"sample_rate": 0.1}}, 422, "params.judge_model"),
        (
            {"trigger": "hallucination", "params": {"sample_rate": 1.5, "judge_model": "a/b"}},
            400,
            "params.sample_rate",
        ),
        (
            {"trigger": "unsatisfactory_content", "params": {"repetition_ngram": 65}},
            400,
            "params.repetition_ngram",
        ),
        ({"trigger": "failed_stream", "payout_percent": 101}, 400, "payout_percent"),
        ({"trigger": "failed_stream", "models": ["a*b"]}, 400, "models[0]"),
        ({"trigger": "failed_stream", "accounts": ["a", "a"]}, 422, "accounts"),
        ({"trigger": "failed_stream", "min_cost": "-1"}, 400, "min_cost"),
        ({"trigger": "sluggish"}, 400, "trigger"),
    ]
    for extra, status, field in refused:
        response = await client.post("/admin/v1/insurance-rules", json={"id": "x", **extra})
        assert response.status_code == status, (extra, response.text)
        assert error_of(response.json())["field"] == field, extra
    judged = await client.post(
        "/admin/v1/insurance-rules",
        json={
            "id": "judge",
            "trigger": "hallucination",
            "params": {"sample_rate": 0.05, "judge_model": "openai/gpt-4o-mini"},
        },
    )
    assert judged.status_code == 201
    assert changes.count == 6
    cleared = await client.patch(
        "/admin/v1/insurance-rules/high-latency", json={"params": {"ttft_ms": None}}
    )
    assert cleared.json()["params"] == {"p50_multiple": 3.0}
    neither = await client.patch(
        "/admin/v1/insurance-rules/high-latency", json={"params": {"p50_multiple": None}}
    )
    assert neither.status_code == 422
    assert error_of(neither.json())["field"] == "params.ttft_ms"
    assert changes.count == 7  # refused changes publish nothing


async def test_rate_limit_policies_and_key_limits_are_published(
    client: Client, changes: Any
) -> None:
    """Policies name existing keys or accounts as subjects (422 naming the entry otherwise);
    every accepted change to a policy, or to a key's own limits, republishes the snapshot."""
    seeded = (await client.get("/admin/v1/rate-limit-policies")).json()
    assert {p["id"]: (p["rpm"], p["burst"], p["subjects"]) for p in seeded} == {
        "claude-models": (100, 100, []),
        "gpt-models": (60, 60, []),
        "image-models": (20, 20, []),
    }
    await client.post("/admin/v1/accounts", json={"id": "acme"})
    created = await client.post("/admin/v1/keys", json={"account": "acme", "id": "dev"})
    key = created.json()["key"]
    assert changes.count == 2
    policy = await client.post(
        "/admin/v1/rate-limit-policies",
        json={"id": "std", "applies_to": "account", "subjects": ["acme"], "tpm": 1000},
    )
    assert policy.status_code == 201
    assert policy.json()["subjects"] == ["acme"]
    updated = await client.patch("/admin/v1/rate-limit-policies/std", json={"rpm": 10})
    assert (updated.json()["rpm"], updated.json()["tpm"]) == (10, 1000)
    assert changes.count == 4

    unknown = await client.post(
        "/admin/v1/rate-limit-policies",
        json={"id": "bad", "applies_to": "key", "subjects": [key["id"], "acme"], "rpm": 1},
    )
    assert unknown.status_code == 422
    assert error_of(unknown.json())["field"] == "subjects[1]"
    assert "unknown key 'acme'" in error_of(unknown.json())["message"]
    switched = await client.patch("/admin/v1/rate-limit-policies/std", json={"applies_to": "key"})
    assert switched.status_code == 422
    assert error_of(switched.json())["field"] == "subjects[0]"
    reserved = await client.post(
        "/admin/v1/rate-limit-policies", json={"id": "key:dev", "applies_to": "key", "rpm": 1}
    )
    assert reserved.status_code == 422
    assert error_of(reserved.json())["field"] == "id"
    assert changes.count == 4  # refused changes publish nothing

    limited = await client.patch("/admin/v1/keys/dev", json={"rpm_limit": 30, "tpm_limit": 9000})
    assert (limited.json()["rpm_limit"], limited.json()["tpm_limit"]) == (30, 9000)
    assert changes.count == 5
    held = await client.delete("/admin/v1/accounts/acme")
    assert held.status_code == 409
    assert (await client.delete("/admin/v1/rate-limit-policies/std")).status_code == 204
    disabled = await client.patch(
        "/admin/v1/rate-limit-policies/gpt-models", json={"enabled": False}
    )
    assert disabled.json()["enabled"] is False
    assert changes.count == 7


async def test_accounts_opt_into_content_retention(client: Client, changes: Any) -> None:
    created = await client.post("/admin/v1/accounts", json={"id": "acme"})
    assert created.json()["retain_content"] is False
    opted = await client.patch("/admin/v1/accounts/acme", json={"retain_content": True})
    assert opted.json()["retain_content"] is True
    assert opted.json()["name"] == ""
    assert changes.count == 2


async def test_settings_change_the_trial_of_new_accounts_and_the_snapshot(
    client: Client, changes: Any
) -> None:
    shown = (await client.get("/admin/v1/settings")).json()
    assert shown["trial_credit"] == "5"
    assert shown["trial_days"] == 30
    assert shown["max_attempts"] == 3
    before = changes.count
    response = await client.patch(
        "/admin/v1/settings", json={"trial_credit": "0.5", "max_attempts": 5}
    )
    assert response.status_code == 200
    assert response.json()["trial_credit_nano"] == 500_000_000
    assert response.json()["trial_days"] == 30
    assert changes.count == before + 1
    created = await client.post("/admin/v1/accounts", json={"id": "later"})
    assert created.json()["balance"]["bonus"] == "0.5"
    for bad in ({"max_attempts": 0}, {"trial_credit": "-1"}, {"retention": 5}):
        refused = await client.patch("/admin/v1/settings", json=bad)
        assert refused.status_code == 400, bad
        assert error_of(refused.json())["type"] == "invalid_request"
    assert (await client.get("/admin/v1/settings")).json()["max_attempts"] == 5


async def test_provider_secrets_are_never_taken_in_clear(client: Client) -> None:
    created = await client.post(
        "/admin/v1/providers",
        json={
            "id": "org",
            "base_url": "https://api.example.com/v1",
            "headers_env": {"X-Org": "EXAMPLE_ORG"},
        },
    )
    assert created.status_code == 201, created.text
    listed = await client.get("/admin/v1/providers")
    assert listed.json()[0]["headers_env"] == {"X-Org": "EXAMPLE_ORG"}
    assert "headers" not in listed.json()[0]
    # A header value is not a field: refused, not silently dropped.
    plain = await client.patch("/admin/v1/providers/org", json={"headers": {"X-Org": "v"}})
    assert plain.status_code == 400 and "headers" in error_of(plain.json())["message"]
    for url in ("https://user:hunter2@api.example.com/v1", "https://tok@api.example.com"):
        refused = await client.post("/admin/v1/providers", json={"id": "p2", "base_url": url})
        error = error_of(refused.json())
        assert refused.status_code == 422 and error["field"] == "base_url", error
        assert "hunter2" not in refused.text and "credentials" in error["message"]
