"""CRUD and constraints of accounts, keys, providers, models, channels and policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from muxgate.credentials import CredentialCipher
from muxgate.store import (
    Conflict,
    Invalid,
    NotFound,
    SecretKeyMissing,
    Store,
    accounts,
    catalog,
    keys,
    ledger,
    policies,
)
from muxgate.store import tables as t


async def seed_catalog(store: Store) -> None:
    await catalog.create_provider(store, "openai", base_url="https://api.openai.com/v1")
    await catalog.create_model(store, "openai/gpt-4o-mini", aliases=["gpt-4o-mini", "mini"])
    await catalog.create_channel(
        store,
        "direct",
        model_slug="openai/gpt-4o-mini",
        provider_id="openai",
        upstream_model="gpt-4o-mini",
        price_prompt_nano=150_000_000,
    )


async def test_accounts_crud(store: Store) -> None:
    created = await accounts.create_account(store, "acme", name="Acme")
    assert created.name == "Acme"
    with pytest.raises(Conflict) as dup:
        await accounts.create_account(store, "acme")
    assert dup.value.field == "id"
    updated = await accounts.update_account(store, "acme", blocked=True)
    assert updated.blocked
    assert updated.name == "Acme"
    assert [a.id for a in await accounts.list_accounts(store)] == ["acme"]
    with pytest.raises(NotFound):
        await accounts.get_account(store, "ghost")
    with pytest.raises(NotFound):
        await accounts.update_account(store, "ghost", name="x")
    # The trial entry is history: the account cannot be deleted, only blocked.
    with pytest.raises(Conflict):
        await accounts.delete_account(store, "acme")


async def test_keys_lifecycle(store: Store) -> None:
    await accounts.create_account(store, "acme")
    with pytest.raises(Invalid) as unknown:
        await keys.create_key(store, account_id="ghost")
    assert unknown.value.field == "account"
    record, secret = await keys.create_key(
        store, account_id="acme", key_id="dev", models=["openai/*"], rpm_limit=60
    )
    assert secret.startswith("sk-mx-")
    assert len(secret) == len("sk-mx-") + 43
    assert record.digest == keys.digest_of(secret)
    assert record.hint == f"sk-mx-...{secret[-4:]}"
    assert secret not in repr(await keys.get_key(store, "dev"))
    with pytest.raises(Conflict):
        await keys.create_key(store, account_id="acme", key_id="dev")
    with pytest.raises(Invalid) as bad:
        await keys.create_key(store, account_id="acme", models=["open*ai/x"])
    assert bad.value.field == "models[0]"

    now = datetime.now(UTC)
    assert record.usable(now)
    updated = await keys.update_key(store, "dev", enabled=False, tpm_limit=1000)
    assert not updated.usable(now)
    assert (updated.rpm_limit, updated.tpm_limit) == (60, 1000)
    expiring = await keys.update_key(
        store, "dev", enabled=True, expires_at=now + timedelta(hours=1)
    )
    assert expiring.usable(now)
    assert not expiring.usable(now + timedelta(hours=2))

    rotated, new_secret = await keys.rotate_key(store, "dev")
    assert new_secret != secret
    assert rotated.digest == keys.digest_of(new_secret)
    revoked = await keys.revoke_key(store, "dev")
    assert revoked.revoked_at is not None
    assert not revoked.usable(now)
    assert (await keys.revoke_key(store, "dev")).revoked_at == revoked.revoked_at
    with pytest.raises(Conflict):
        await keys.update_key(store, "dev", enabled=True)
    with pytest.raises(Conflict):
        await keys.rotate_key(store, "dev")
    with pytest.raises(NotFound):
        await keys.revoke_key(store, "ghost")
    assert [k.id for k in await keys.list_keys(store, "acme")] == ["dev"]
    assert await keys.list_keys(store, "other") == []


async def test_providers_keep_credentials_out_of_reach(store: Store) -> None:
    record = await catalog.create_provider(
        store, "vault", base_url="https://x.example/v1", credential="sk-upstream"
    )
    assert record.credential_encrypted is not None
    assert "sk-upstream" not in record.credential_encrypted
    assert store.cipher.decrypt(record.credential_encrypted) == "sk-upstream"
    switched = await catalog.update_provider(store, "vault", credential_env="VAULT_KEY")
    assert (switched.credential_env, switched.credential_encrypted) == ("VAULT_KEY", None)
    with pytest.raises(Invalid) as both:
        await catalog.create_provider(
            store, "two", base_url="https://x", credential="a", credential_env="B"
        )
    assert both.value.field == "credential"
    with pytest.raises(Invalid) as scheme:
        await catalog.create_provider(store, "ftp", base_url="ftp://x")
    assert scheme.value.field == "base_url"
    with pytest.raises(Conflict):
        await catalog.create_provider(store, "vault", base_url="https://x")


async def test_provider_headers_name_environment_variables_never_values(store: Store) -> None:
    record = await catalog.create_provider(
        store, "org", base_url="https://x.example/v1", headers_env={"X-Org": "ORG_ID"}
    )
    assert record.headers_env == {"X-Org": "ORG_ID"}
    updated = await catalog.update_provider(store, "org", headers_env={"X-Team": "TEAM"})
    assert updated.headers_env == {"X-Team": "TEAM"}
    for bad in ({"X-Org": "not a name"}, {"X Org": "ORG"}, {"X-Org": ""}):
        with pytest.raises(Invalid) as refused:
            await catalog.update_provider(store, "org", headers_env=bad)
        assert refused.value.field == "headers_env"
    assert not hasattr(record, "headers")


async def test_a_base_url_with_credentials_is_refused_without_repeating_them(
    store: Store,
) -> None:
    for url in ("https://user:hunter2@x.example/v1", "http://token@x.example"):
        with pytest.raises(Invalid) as refused:
            await catalog.create_provider(store, "p", base_url=url)
        assert refused.value.field == "base_url"
        assert "credential" in refused.value.message and "hunter2" not in refused.value.message
    await catalog.create_provider(store, "p", base_url="https://x.example/v1/@scope")
    with pytest.raises(Invalid):
        await catalog.update_provider(store, "p", base_url="https://u:pw@x.example/v1")
    assert (await catalog.get_provider(store, "p")).base_url == "https://x.example/v1/@scope"


async def test_an_encrypted_credential_needs_the_key(store: Store) -> None:
    store.cipher = CredentialCipher(None)
    with pytest.raises(SecretKeyMissing, match="MUXGATE_SECRET_KEY"):
        await catalog.create_provider(store, "p", base_url="https://x", credential="s")
    with pytest.raises(ValueError, match="MUXGATE_SECRET_KEY"):
        CredentialCipher("not-a-key")


async def test_model_names_are_one_namespace(store: Store) -> None:
    await seed_catalog(store)
    with pytest.raises(Conflict) as taken:
        await catalog.create_model(store, "mini")
    assert taken.value.field == "slug"
    with pytest.raises(Conflict) as alias:
        await catalog.create_model(store, "other/model", aliases=["x", "gpt-4o-mini"])
    assert alias.value.field == "aliases[1]"
    assert [m.slug for m in await catalog.list_models(store)] == ["openai/gpt-4o-mini"]
    with pytest.raises(Invalid):
        await catalog.create_model(store, "a/b", aliases=["a/b"])
    updated = await catalog.update_model(store, "openai/gpt-4o-mini", aliases=["mini"])
    assert updated.aliases == ["mini"]
    # The released alias is free again.
    other = await catalog.create_model(store, "other/model", aliases=["gpt-4o-mini"])
    assert other.aliases == ["gpt-4o-mini"]


async def test_channels_reference_models_and_providers(store: Store) -> None:
    await seed_catalog(store)
    [channel] = await catalog.list_channels(store, "openai/gpt-4o-mini")
    assert channel.price_cached_nano == channel.price_prompt_nano == 150_000_000
    with pytest.raises(Conflict):
        await catalog.create_channel(
            store,
            "direct",
            model_slug="openai/gpt-4o-mini",
            provider_id="openai",
            upstream_model="x",
        )
    with pytest.raises(Invalid) as provider:
        await catalog.create_channel(
            store, "c2", model_slug="openai/gpt-4o-mini", provider_id="nope", upstream_model="x"
        )
    assert provider.value.field == "provider"
    with pytest.raises(Invalid) as model:
        await catalog.update_channel(store, "direct", model_slug="nope")
    assert model.value.field == "model"
    with pytest.raises(Invalid) as weight:
        await catalog.update_channel(store, "direct", weight=-1)
    assert weight.value.field == "weight"
    updated = await catalog.update_channel(store, "direct", enabled=False, weight=5)
    assert (updated.enabled, updated.weight) == (False, 5)
    with pytest.raises(Conflict):
        await catalog.delete_model(store, "openai/gpt-4o-mini")
    with pytest.raises(Conflict):
        await catalog.delete_provider(store, "openai")
    await catalog.delete_channel(store, "direct")
    with pytest.raises(NotFound):
        await catalog.delete_channel(store, "direct")
    await catalog.delete_model(store, "openai/gpt-4o-mini")
    await catalog.delete_provider(store, "openai")
    assert await catalog.list_models(store) == []
    # Deleting a model frees its names.
    await catalog.create_model(store, "mini")


async def test_policies_crud(store: Store) -> None:
    rule = await policies.create_insurance_rule(
        store, "slow", trigger="high_latency", params={"ttft_ms": 5000}, models=["openai/*"]
    )
    assert rule.payout_percent == 100
    with pytest.raises(Invalid) as threshold:
        await policies.create_insurance_rule(store, "bad", trigger="low_throughput")
    assert threshold.value.field == "params.min_tokens_per_second"
    with pytest.raises(Invalid):
        await policies.update_insurance_rule(store, "slow", params={"ttft_ms": None})
    changed = await policies.update_insurance_rule(store, "slow", payout_percent=50)
    assert changed.payout_percent == 50
    with pytest.raises(Conflict):
        await policies.create_insurance_rule(store, "slow", trigger="failed_stream")
    policy = await policies.create_rate_limit_policy(store, "std", applies_to="key", rpm=60)
    assert policy.tpm is None
    with pytest.raises(Invalid):
        await policies.create_rate_limit_policy(store, "none", applies_to="key")
    assert [p.id for p in await policies.list_rate_limit_policies(store)] == ["std"]
    await policies.delete_rate_limit_policy(store, "std")
    await policies.delete_insurance_rule(store, "slow")
    with pytest.raises(NotFound):
        await policies.get_insurance_rule(store, "slow")


async def test_the_schema_itself_refuses_a_second_charge(store: Store) -> None:
    """Idempotency does not rest on the code alone: the constraints hold it."""
    await accounts.create_account(store, "acme")
    row = {
        "account_id": "acme",
        "kind": "charge",
        "purchased_nano": -1,
        "bonus_nano": 0,
        "request_id": "r1",
        "note": "",
        "created_at": datetime.now(UTC),
    }
    async with store.transaction() as conn:
        await conn.execute(t.ledger_entries.insert().values(row))
    with pytest.raises(IntegrityError):
        async with store.transaction() as conn:
            await conn.execute(t.ledger_entries.insert().values(row))
    [trial] = [e for e in await ledger.list_entries(store, "acme") if e.kind == "trial"]
    expiry = {**row, "kind": "expiry", "request_id": None, "grant_id": trial.id}
    async with store.transaction() as conn:
        await conn.execute(t.ledger_entries.insert().values(expiry))
    with pytest.raises(IntegrityError):
        async with store.transaction() as conn:
            await conn.execute(t.ledger_entries.insert().values(expiry))


async def test_rule_parameters_are_checked_per_trigger(store: Store) -> None:
    """Each trigger takes its own parameters, typed and bounded, defaults filled in; changing
    the trigger starts them afresh."""
    refused = [
        ("high_latency", {"ttft_ms": 1.5}, "params.ttft_ms"),
        ("high_latency", {"ttft_ms": True}, "params.ttft_ms"),
        ("high_latency", {"p50_multiple": 1}, "params.p50_multiple"),
        ("low_throughput", {"min_tokens_per_second": 5, "min_output_tokens": -1}, None),
        ("unsatisfactory_content", {"repetition_max": 10_001}, "params.repetition_max"),
        ("hallucination", {"sample_rate": 0, "judge_model": "a/b"}, "params.sample_rate"),
        ("hallucination", {"sample_rate": 1, "judge_model": "not a slug"}, "params.judge_model"),
        ("failed_stream", {"repetition_ngram": 8}, "params.repetition_ngram"),
    ]
    for trigger, params, field in refused:
        with pytest.raises(Invalid) as error:
            await policies.create_insurance_rule(store, "x", trigger=trigger, params=params)
        assert error.value.field == (field or "params.min_output_tokens"), (trigger, params)
    content = await policies.create_insurance_rule(
        store, "content", trigger="unsatisfactory_content", params={"repetition_ngram": 4}
    )
    assert content.params == {"repetition_ngram": 4, "repetition_max": 12}
    throughput = await policies.create_insurance_rule(
        store, "slow", trigger="low_throughput", params={"min_tokens_per_second": 5}
    )
    assert throughput.params == {"min_tokens_per_second": 5.0, "min_output_tokens": 50}
    moved = await policies.update_insurance_rule(
        store, "slow", trigger="high_latency", params={"p50_multiple": 2}
    )
    assert moved.params == {"p50_multiple": 2.0}
    kept = await policies.update_insurance_rule(store, "slow", params={"ttft_ms": 900})
    assert kept.params == {"p50_multiple": 2.0, "ttft_ms": 900}
    for cap in ("cap_per_day_nano", "cap_per_request_nano", "min_cost_nano"):
        with pytest.raises(Invalid) as error:
            await policies.update_insurance_rule(store, "slow", **{cap: -1})
        assert error.value.field == cap
    with pytest.raises(Invalid) as duplicate:
        await policies.update_insurance_rule(store, "slow", channels=["a", "a"])
    assert duplicate.value.field == "channels"
