"""What the control plane's APIs refuse, on SQLite and PostgreSQL: numbers the store cannot
hold, JSON of the wrong type or nested too deep, methods a path does not have; and the
management API's statistics, which differ by dialect."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

import factories
from control.conftest import SECRET_KEY
from muxgate.store import Store, accounts, keys
from muxgate.store.usage import record_usage
from store.conftest import empty

Client = AsyncTestClient[Litestar]
TOO_LARGE = [str(2**63), str(2**64), "1" + "0" * 40, "-" + str(2**63 + 1)]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'control.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    opened = await Store.open(url, secret_key=SECRET_KEY)
    await empty(opened)
    # The test client runs the app on its own event loop: it opens its own connections there.
    await opened.engine.dispose()
    yield opened
    await opened.close()


def refused(response: Any, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "400" and error["type"] == "invalid_request", error
    if field is not None:
        assert error["field"] == field, error
    return error


async def account_key(client: Client) -> str:
    assert (await client.post("/admin/v1/accounts", json={"id": "acme"})).status_code == 201
    created = await client.post("/admin/v1/keys", json={"account": "acme", "name": "k"})
    assert created.status_code == 201, created.text
    secret: str = created.json()["secret"]
    return secret


async def test_ledger_paging_numbers_out_of_range_are_400(client: Client) -> None:
    await account_key(client)
    ledger = "/admin/v1/accounts/acme/ledger"
    for value in [*TOO_LARGE, "0", "-1"]:
        refused(await client.get(ledger, params={"before": value}), "before")
        refused(await client.get(ledger, params={"limit": value}), "limit")
    refused(await client.get(ledger, params={"limit": "1001"}), "limit")
    assert (await client.get(ledger, params={"before": 2**62, "limit": 1000})).status_code == 200


async def test_claim_paging_limit_out_of_range_is_400(client: Client) -> None:
    headers = {"authorization": f"Bearer {await account_key(client)}"}
    claims = "/api/v1/management/insurance/claims"
    for value in [*TOO_LARGE, "0"]:
        refused(await client.get(claims, params={"limit": value}, headers=headers), "limit")


async def test_body_numbers_out_of_range_are_400(client: Client) -> None:
    await account_key(client)
    for value in [2**63, 2**64, 10**40, -(2**63) - 1]:
        key = {"account": "acme", "name": "k2", "rpm_limit": value}
        refused(await client.post("/admin/v1/keys", json=key), "rpm_limit")
        refused(await client.patch("/admin/v1/settings", json={"max_attempts": value}))


async def test_json_types_are_not_coerced(client: Client) -> None:
    await account_key(client)
    key_id = (await client.get("/admin/v1/keys")).json()[0]["id"]
    for enabled in (0, 1, "true", "false", None):
        refused(await client.patch(f"/admin/v1/keys/{key_id}", json={"enabled": enabled}))
    refused(await client.post("/admin/v1/keys", json={"account": "acme", "rpm_limit": "5"}))
    refused(await client.patch("/admin/v1/settings", json={"max_attempts": 2.0}))
    patched = await client.patch(f"/admin/v1/keys/{key_id}", json={"enabled": False})
    assert patched.status_code == 200 and patched.json()["enabled"] is False


async def test_json_nested_past_the_limit_is_400(client: Client) -> None:
    secret = await account_key(client)
    deep = "[" * 1000 + "]" * 1000
    json_type = {"content-type": "application/json"}
    r = await client.post(
        "/admin/v1/accounts", content=f'{{"id": "x", "name": {deep}}}', headers=json_type
    )
    assert "128" in refused(r, "body")["message"]
    r = await client.put(
        "/api/v1/management/routing/settings",
        content=f'{{"default_fallback": null, "x": {deep}}}',
        headers={**json_type, "authorization": f"Bearer {secret}"},
    )
    assert "128" in refused(r, "body")["message"]
    # 128 levels are accepted (and then judged by the schema).
    within = "[" * 127 + "]" * 127
    r = await client.post(
        "/admin/v1/accounts", content=f'{{"id": "y", "name": {within}}}', headers=json_type
    )
    assert "128" not in refused(r, "name")["message"]


async def test_405_names_the_allowed_methods(client: Client) -> None:
    secret = await account_key(client)
    r = await client.delete("/admin/v1/settings")
    assert r.status_code == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "PATCH", "OPTIONS"}
    assert r.json()["error"]["type"] == "method_not_allowed"
    r = await client.post("/api/v1/management/payg/balance", headers={"x-api-key": secret})
    assert r.status_code == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "OPTIONS"}


async def test_usage_statistics_count_failures_on_every_store(client: Client, store: Store) -> None:
    await accounts.create_account(store, "acme")
    key, secret = await keys.create_key(store, account_id="acme", name="k")
    now_ms = int(time.time() * 1000)
    events = [
        factories.usage_event(
            f"r{i}", created_ms=now_ms - 1000, account_id="acme", key_id=key.id, status=status
        )
        for i, status in enumerate(["ok", "failed", "ok"])
    ]
    await record_usage(store, events)
    await store.engine.dispose()
    r = await client.get("/api/v1/management/usage", headers={"authorization": f"Bearer {secret}"})
    assert r.status_code == 200, r.text
    total = r.json()["data"]["total"]
    assert total["requests"] == 3 and total["failed_requests"] == 1, total


async def test_a_nul_byte_in_the_path_or_query_is_400(client: Client) -> None:
    secret = await account_key(client)
    for path, params in [
        ("/admin/v1/keys", {"account": "\x00"}),
        ("/admin/v1/channels", {"model": "a\x00"}),
        ("/admin/v1/accounts/a%00b", {}),
        ("/admin/v1/accounts/a%00/ledger", {}),
        ("/admin/v1/providers/x%00", {}),
    ]:
        refused(await client.get(path, params=params))
    usage = await client.get(
        "/api/v1/management/usage",
        params={"model": "m\x00"},
        headers={"authorization": f"Bearer {secret}"},
    )
    refused(usage)
