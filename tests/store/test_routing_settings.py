"""An account's default fallback model and a model's own number of attempts in the store: a
fallback must name a model (slug or alias) and its `:provider` suffix a provider or channel of
that model, and the catalog refuses changes that would leave some account's fallback naming
nothing."""

from __future__ import annotations

import pytest

from muxgate.store import Conflict, Invalid, Store, accounts, catalog


async def seed(store: Store) -> None:
    for provider in ("openai", "azure"):
        await catalog.create_provider(store, provider, base_url=f"https://{provider}.test/v1")
    await catalog.create_model(store, "openai/gpt-4o", aliases=["gpt-4o"])
    await catalog.create_model(store, "openai/gpt-4o-mini", aliases=["mini"])
    for channel, provider in (("4o@openai", "openai"), ("4o@azure", "azure")):
        await catalog.create_channel(
            store, channel, model_slug="openai/gpt-4o", provider_id=provider, upstream_model="x"
        )


@pytest.mark.parametrize(
    "name",
    [
        "openai/gpt-4o",
        "gpt-4o",
        "openai/gpt-4o:azure",
        "gpt-4o:4o@openai",
        "openai/gpt-4o:azure/4o@azure",
        "mini",
    ],
)
async def test_a_default_fallback_names_a_model_and_maybe_its_provider(
    store: Store, name: str
) -> None:
    await seed(store)
    created = await accounts.create_account(store, "team", default_fallback=name)
    assert created.default_fallback == name
    assert (await accounts.get_account(store, "team")).default_fallback == name
    cleared = await accounts.update_account(store, "team", default_fallback=None)
    assert cleared.default_fallback is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("openai/gpt-5", "no model or alias 'openai/gpt-5'"),
        ("false", "no model or alias 'false'"),
        ("openai/gpt-4o:", "no model or alias 'openai/gpt-4o:'"),
        ("openai/gpt-4o:bedrock", "no provider or channel 'bedrock' serves model"),
        # A provider of the catalog, but not one serving this model.
        ("mini:azure", "no provider or channel 'azure' serves model 'openai/gpt-4o-mini'"),
        ("gpt-4o:openai/4o@azure", "no provider or channel 'openai/4o@azure'"),
    ],
)
async def test_a_fallback_that_names_nothing_is_refused(
    store: Store, name: str, problem: str
) -> None:
    await seed(store)
    await accounts.create_account(store, "team", default_fallback="gpt-4o")
    with pytest.raises(Invalid, match=problem) as refused:
        await accounts.update_account(store, "team", default_fallback=name)
    assert refused.value.field == "default_fallback"
    assert (await accounts.get_account(store, "team")).default_fallback == "gpt-4o"
    with pytest.raises(Invalid):
        await accounts.create_account(store, "other", default_fallback=name)
    assert [a.id for a in await accounts.list_accounts(store)] == ["team"]


async def test_a_model_some_account_falls_back_to_cannot_be_deleted(store: Store) -> None:
    await seed(store)
    await accounts.create_account(store, "b-team", default_fallback="mini")
    await accounts.create_account(store, "a-team", default_fallback="openai/gpt-4o-mini")
    await accounts.create_account(store, "other", default_fallback="gpt-4o")
    with pytest.raises(Conflict, match="default fallback of accounts a-team, b-team") as refused:
        await catalog.delete_model(store, "openai/gpt-4o-mini")
    assert refused.value.field == "slug"
    assert await catalog.get_model(store, "openai/gpt-4o-mini")
    for account in ("a-team", "b-team"):
        await accounts.update_account(store, account, default_fallback=None)
    await catalog.delete_model(store, "openai/gpt-4o-mini")


async def test_an_alias_in_use_cannot_go(store: Store) -> None:
    await seed(store)
    await accounts.create_account(store, "team", default_fallback="mini")
    with pytest.raises(Conflict, match="default fallback of accounts team") as refused:
        await catalog.update_model(store, "openai/gpt-4o-mini", aliases=["tiny"])
    assert refused.value.field == "aliases"
    assert (await catalog.get_model(store, "openai/gpt-4o-mini")).aliases == ["mini"]
    kept = await catalog.update_model(store, "openai/gpt-4o-mini", aliases=["tiny", "mini"])
    assert kept.aliases == ["tiny", "mini"]


async def test_the_last_channel_a_pin_names_cannot_go(store: Store) -> None:
    await seed(store)
    await accounts.create_account(store, "team", default_fallback="gpt-4o:azure")
    with pytest.raises(Conflict, match="channel '4o@azure' is needed by the default fallback"):
        await catalog.delete_channel(store, "4o@azure")
    with pytest.raises(Conflict, match="accounts team"):
        await catalog.update_channel(store, "4o@azure", provider_id="openai")
    with pytest.raises(Conflict, match="accounts team"):
        await catalog.update_channel(store, "4o@azure", model_slug="openai/gpt-4o-mini")
    # Channels the pin does not need come and go freely.
    await catalog.delete_channel(store, "4o@openai")
    await catalog.update_channel(store, "4o@azure", weight=3)
    await accounts.update_account(store, "team", default_fallback="gpt-4o")
    await catalog.delete_channel(store, "4o@azure")


async def test_a_model_carries_its_own_attempts(store: Store) -> None:
    model = await catalog.create_model(store, "openai/gpt-4o", max_attempts=2)
    assert model.max_attempts == 2
    assert (await catalog.create_model(store, "openai/o3")).max_attempts is None
    changed = await catalog.update_model(store, "openai/gpt-4o", max_attempts=20)
    assert changed.max_attempts == 20
    assert (await catalog.update_model(store, "openai/gpt-4o", context_length=9)).max_attempts == 20
    reset = await catalog.update_model(store, "openai/gpt-4o", max_attempts=None)
    assert reset.max_attempts is None
    for bad in (0, 21):
        with pytest.raises(Invalid, match="between 1 and 20") as refused:
            await catalog.update_model(store, "openai/gpt-4o", max_attempts=bad)
        assert refused.value.field == "max_attempts"
        with pytest.raises(Invalid):
            await catalog.create_model(store, f"openai/bad-{bad}", max_attempts=bad)
    assert [m.slug for m in await catalog.list_models(store)] == ["openai/gpt-4o", "openai/o3"]
