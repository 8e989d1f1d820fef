"""Routing settings over a real store: an account's default fallback through the admin API and
through the account's own management API (its API key), a model's attempts through the catalog
API, the 422/409 answers naming the field or the accounts, and both compiled into the snapshot
(a fallback the catalog cannot serve right now left out of it)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from muxgate.control import compile_snapshot
from muxgate.store import Store, accounts, catalog, keys

Client = AsyncTestClient[Litestar]
PATH = "/api/v1/management/routing/settings"


@pytest.fixture
async def seeded(store: Store) -> None:
    for provider in ("openai", "azure"):
        await catalog.create_provider(store, provider, base_url=f"https://{provider}.test/v1")
    await catalog.create_model(store, "openai/gpt-4o", aliases=["gpt-4o"])
    await catalog.create_model(store, "openai/gpt-4o-mini", aliases=["mini"], max_attempts=1)
    for channel, provider in (("4o@openai", "openai"), ("4o@azure", "azure")):
        await catalog.create_channel(
            store, channel, model_slug="openai/gpt-4o", provider_id=provider, upstream_model="x"
        )
    await accounts.create_account(store, "team")
    await accounts.create_account(store, "other")


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    detail: dict[str, Any] = response.json()["error"]
    return detail


@pytest.mark.usefixtures("seeded")
async def test_the_admin_sets_an_accounts_default_fallback(client: Client, changes: Any) -> None:
    assert (await client.get("/admin/v1/accounts/team")).json()["default_fallback"] is None
    before = changes.count
    updated = await client.patch(
        "/admin/v1/accounts/team", json={"default_fallback": "gpt-4o:azure"}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["default_fallback"] == "gpt-4o:azure"
    assert changes.count == before + 1
    # Other fields leave it alone; null clears it.
    renamed = await client.patch("/admin/v1/accounts/team", json={"name": "Team"})
    assert renamed.json()["default_fallback"] == "gpt-4o:azure"
    for bad, message in (
        ("openai/gpt-5", "no model or alias 'openai/gpt-5'"),
        ("mini:azure", "no provider or channel 'azure' serves model 'openai/gpt-4o-mini'"),
    ):
        refused = error_of(
            await client.patch("/admin/v1/accounts/team", json={"default_fallback": bad}), 422
        )
        assert (refused["field"], refused["message"]) == ("default_fallback", message)
    assert (await client.get("/admin/v1/accounts/team")).json()["default_fallback"] == (
        "gpt-4o:azure"
    )
    malformed = await client.patch("/admin/v1/accounts/team", json={"default_fallback": 5})
    assert error_of(malformed, 400)["field"] == "default_fallback"
    cleared = await client.patch("/admin/v1/accounts/team", json={"default_fallback": None})
    assert cleared.json()["default_fallback"] is None

    created = await client.post(
        "/admin/v1/accounts", json={"id": "new", "default_fallback": "openai/gpt-4o"}
    )
    assert created.status_code == 201
    assert created.json()["default_fallback"] == "openai/gpt-4o"
    unknown = await client.post("/admin/v1/accounts", json={"id": "x", "default_fallback": "no"})
    assert error_of(unknown, 422)["field"] == "default_fallback"
    assert (await client.get("/admin/v1/accounts/x")).status_code == 404


@pytest.mark.usefixtures("seeded")
async def test_the_catalog_refuses_to_strand_a_fallback(client: Client) -> None:
    await client.patch("/admin/v1/accounts/team", json={"default_fallback": "mini"})
    await client.patch("/admin/v1/accounts/other", json={"default_fallback": "gpt-4o:azure"})
    gone = error_of(await client.delete("/admin/v1/models/openai/gpt-4o-mini"), 409)
    assert "default fallback of accounts team" in gone["message"]
    assert gone["field"] == "slug"
    renamed = await client.patch("/admin/v1/models/openai/gpt-4o-mini", json={"aliases": []})
    assert error_of(renamed, 409)["field"] == "aliases"
    pinned = error_of(await client.delete("/admin/v1/channels/4o@azure"), 409)
    assert "default fallback of accounts other" in pinned["message"]
    # Once the accounts choose another, the model goes.
    await client.patch("/admin/v1/accounts/team", json={"default_fallback": None})
    assert (await client.delete("/admin/v1/models/openai/gpt-4o-mini")).status_code == 204


@pytest.mark.usefixtures("seeded")
async def test_a_models_attempts_through_the_catalog_api(client: Client) -> None:
    path = "/admin/v1/models/openai/gpt-4o"
    assert (await client.get(path)).json()["max_attempts"] is None
    assert (await client.patch(path, json={"max_attempts": 4})).json()["max_attempts"] == 4
    for bad in (0, 21, 2.5):
        refused = await client.patch(path, json={"max_attempts": bad})
        assert error_of(refused, 400)["field"] == "max_attempts"
    assert (await client.get(path)).json()["max_attempts"] == 4
    assert (await client.patch(path, json={"max_attempts": None})).json()["max_attempts"] is None
    created = await client.post("/admin/v1/models", json={"slug": "a/b", "max_attempts": 20})
    assert created.json()["max_attempts"] == 20


@pytest.mark.usefixtures("seeded")
async def test_the_account_sets_its_default_fallback_itself(
    app: Litestar, store: Store, changes: Any
) -> None:
    _, secret = await keys.create_key(store, account_id="team", key_id="team-key")
    _, other = await keys.create_key(store, account_id="other", key_id="other-key")
    team = {"Authorization": f"Bearer {secret}"}
    async with AsyncTestClient(app) as client:
        assert (await client.get(PATH, headers=team)).json() == {
            "success": True,
            "data": {"default_fallback": None},
        }
        before = changes.count
        put = await client.put(PATH, json={"default_fallback": "gpt-4o:4o@openai"}, headers=team)
        assert put.status_code == 200, put.text
        assert put.json() == {"success": True, "data": {"default_fallback": "gpt-4o:4o@openai"}}
        assert changes.count == before + 1
        assert (await accounts.get_account(store, "team")).default_fallback == "gpt-4o:4o@openai"
        # Another account's key sees and changes its own account only.
        theirs = await client.get(PATH, headers={"x-api-key": other})
        assert theirs.json()["data"] == {"default_fallback": None}

        refused = error_of(
            await client.put(PATH, json={"default_fallback": "gpt-5"}, headers=team), 422
        )
        assert refused["field"] == "default_fallback"
        for body in ({}, {"default_fallback": "mini", "extra": 1}, {"default_fallback": ""}):
            assert (await client.put(PATH, json=body, headers=team)).status_code == 400
        assert (await client.get(PATH)).status_code == 401
        assert (await client.put(PATH, json={"default_fallback": None})).status_code == 401
        cleared = await client.put(PATH, json={"default_fallback": None}, headers=team)
        assert cleared.json()["data"] == {"default_fallback": None}
    assert (await accounts.get_account(store, "team")).default_fallback is None


@pytest.mark.usefixtures("seeded")
async def test_both_are_compiled_into_the_snapshot(store: Store) -> None:
    await accounts.update_account(store, "team", default_fallback="gpt-4o:azure")
    snapshot = await compile_snapshot(store)
    models = {m.slug: m for m in snapshot.models}
    assert (models["openai/gpt-4o"].max_attempts, models["openai/gpt-4o-mini"].max_attempts) == (
        None,
        1,
    )
    fallbacks = {a.id: a.default_fallback for a in snapshot.accounts}
    assert fallbacks == {"team": "gpt-4o:azure", "other": None}
    # The only channel the pin names is disabled: the gateway would refuse every request of
    # the account over it, so the fallback stays out until the channel is back.
    await catalog.update_channel(store, "4o@azure", enabled=False)
    assert {a.id: a.default_fallback for a in (await compile_snapshot(store)).accounts} == {
        "team": None,
        "other": None,
    }
    await catalog.update_channel(store, "4o@azure", enabled=True, weight=0)
    assert (await compile_snapshot(store)).accounts[1].default_fallback is None
    await catalog.update_channel(store, "4o@azure", weight=1)
    assert (await compile_snapshot(store)).accounts[1].default_fallback == "gpt-4o:azure"
