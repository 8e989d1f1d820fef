"""Rate-limit policies name the keys or accounts they limit; what they name must exist, and
stays as long as they name it. Keys' own limits are real rates."""

from __future__ import annotations

import pytest

from muxgate.store import Conflict, Invalid, Store, accounts, keys, policies, settings


async def seed(store: Store) -> None:
    await settings.update_settings(store, trial_credit_nano=0)  # no history: deletable
    for account in ("acme", "solo"):
        await accounts.create_account(store, account)
    await keys.create_key(store, account_id="acme", key_id="dev")
    await keys.create_key(store, account_id="acme", key_id="ci")


async def test_subjects_are_keys_or_accounts_as_the_policy_applies_to(store: Store) -> None:
    await seed(store)
    policy = await policies.create_rate_limit_policy(
        store, "ci-slow", applies_to="key", subjects=["ci", "dev"], models=["openai/*"], rpm=5
    )
    assert (policy.subjects, policy.models) == (["ci", "dev"], ["openai/*"])
    assert (await policies.get_rate_limit_policy(store, "ci-slow")).subjects == ["ci", "dev"]

    with pytest.raises(Invalid) as account_as_key:
        await policies.create_rate_limit_policy(
            store, "bad", applies_to="key", subjects=["dev", "acme"], rpm=5
        )
    assert (account_as_key.value.field, account_as_key.value.message) == (
        "subjects[1]",
        "unknown key 'acme'",
    )
    with pytest.raises(Invalid) as twice:
        await policies.create_rate_limit_policy(
            store, "bad", applies_to="account", subjects=["acme", "acme"], rpm=5
        )
    assert twice.value.field == "subjects"
    # Turning a key policy into an account policy checks the subjects it keeps.
    with pytest.raises(Invalid) as switched:
        await policies.update_rate_limit_policy(store, "ci-slow", applies_to="account")
    assert switched.value.field == "subjects[0]"
    moved = await policies.update_rate_limit_policy(
        store, "ci-slow", applies_to="account", subjects=["solo"]
    )
    assert (moved.applies_to, moved.subjects, moved.rpm) == ("account", ["solo"], 5)
    cleared = await policies.update_rate_limit_policy(store, "ci-slow", subjects=[])
    assert cleared.subjects == []
    assert {p.id for p in await policies.list_rate_limit_policies(store)} == {"ci-slow"}


async def test_key_prefixed_ids_are_the_keys_own_limits(store: Store) -> None:
    with pytest.raises(Invalid) as reserved:
        await policies.create_rate_limit_policy(store, "key:dev", applies_to="key", rpm=5)
    assert reserved.value.field == "id"


async def test_an_account_a_policy_names_cannot_be_deleted(store: Store) -> None:
    await seed(store)
    await policies.create_rate_limit_policy(
        store, "solo-tokens", applies_to="account", subjects=["solo"], tpm=1000
    )
    # A key policy naming a key of the same id as the account does not hold the account.
    await keys.create_key(store, account_id="acme", key_id="solo")
    await policies.create_rate_limit_policy(
        store, "solo-key", applies_to="key", subjects=["solo"], rpm=100
    )
    with pytest.raises(Conflict, match="named by rate-limit policies solo-tokens"):
        await accounts.delete_account(store, "solo")
    await policies.update_rate_limit_policy(store, "solo-tokens", subjects=["acme"])
    await accounts.delete_account(store, "solo")
    assert [a.id for a in await accounts.list_accounts(store)] == ["acme"]


async def test_a_keys_own_limits_are_at_least_one(store: Store) -> None:
    await seed(store)
    with pytest.raises(Invalid) as zero:
        await keys.update_key(store, "dev", rpm_limit=0)
    assert zero.value.field == "rpm_limit"
    with pytest.raises(Invalid) as none_at_all:
        await keys.create_key(store, account_id="acme", tpm_limit=0)
    assert none_at_all.value.field == "tpm_limit"
    limited = await keys.update_key(store, "dev", rpm_limit=1, tpm_limit=2)
    assert (limited.rpm_limit, limited.tpm_limit) == (1, 2)
    assert (await keys.update_key(store, "dev", credit_limit_nano=0)).credit_limit_nano == 0
