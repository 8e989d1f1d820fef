"""The TOML configuration as an import/export format: import -> export -> import is stable,
secrets never appear in the export, and a failing import changes nothing."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from muxgate import config
from muxgate.store import Conflict, Invalid, Store, accounts, catalog, keys, policies, settings
from muxgate.store.config_io import export_config, import_config, models_within

CONFIG = """
[gateway]
keepalive_seconds = 15
max_attempts = 4

[[providers]]
id = "openai"
base_url = "https://api.openai.com/v1"
credential_env = "OPENAI_API_KEY"
headers_env = { "OpenAI-Organization" = "OPENAI_ORG" }
connect_timeout_seconds = 2.5

[[providers]]
id = "mirror"
base_url = "http://127.0.0.1:9999/v1"

[[models]]
slug = "openai/gpt-4o-mini"
aliases = ["gpt-4o-mini"]
context_length = 128000
capabilities = ["tools", "vision"]
  [[models.channels]]
  id = "direct"
  provider = "openai"
  upstream_model = "gpt-4o-mini"
  weight = 2
  price = { prompt = "0.15", completion = 0.6, cached = "0.075" }
  timeouts = { first_byte_seconds = 30 }

  [[models.channels]]
  id = "mirrored"
  provider = "mirror"
  upstream_model = "mini \\"quoted\\""
  enabled = false

[[models]]
slug = "meta/llama-3.3-70b"

[[accounts]]
id = "team"
name = "The Team"

[[accounts]]
id = "frozen"
blocked = true

[[keys]]
id = "dev"
account = "team"
secret = "sk-dev-secret"
name = "developer key"
models = ["openai/*"]
rpm_limit = 60
tpm_limit = 100000
credit_limit = "12.5"
expires_at = 2031-01-01T00:00:00Z

[[keys]]
id = "ci"
account = "team"
digest = "%s"
enabled = false

[[insurance_rules]]
id = "slow-first-token"
trigger = "high_latency"
threshold = 8000.0
models = ["openai/*"]
payout_percent = 50
cap_per_day = "20"

[[rate_limit_policies]]
id = "default-key"
applies_to = "key"
rpm = 600
burst = 20

[[rate_limit_policies]]
id = "team-tokens"
applies_to = "account"
subjects = ["team"]
models = ["openai/*"]
tpm = 50000
""" % ("ab" * 32)


def parse(text: str) -> config.ConfigFile:
    return msgspec.convert(tomllib.loads(text), config.ConfigFile)


async def without_defaults(store: Store) -> Store:
    """A fresh store minus the default insurance rules and rate-limit policies every store
    starts with, to compare with the test stores (emptied)."""
    for rule in await policies.list_insurance_rules(store):
        await policies.delete_insurance_rule(store, rule.id)
    for policy in await policies.list_rate_limit_policies(store):
        await policies.delete_rate_limit_policy(store, policy.id)
    return store


async def test_import_export_import_round_trip(store: Store, tmp_path: Path) -> None:
    await import_config(store, parse(CONFIG))
    exported = await export_config(store)
    assert "sk-dev-secret" not in exported
    assert config.key_digest("sk-dev-secret") in exported

    again = parse(exported)
    config.validate(again)
    await import_config(store, again)
    assert await export_config(store) == exported

    # What the store holds matches the file.
    assert (await settings.get_settings(store)).keepalive_ms == 15_000
    channel = await catalog.get_channel(store, "direct")
    assert (channel.price_prompt_nano, channel.price_cached_nano) == (150_000_000, 75_000_000)
    assert channel.first_byte_timeout_ms == 30_000
    assert (await catalog.get_channel(store, "mirrored")).upstream_model == 'mini "quoted"'
    openai = await catalog.get_provider(store, "openai")
    assert openai.headers_env == {"OpenAI-Organization": "OPENAI_ORG"}
    dev = await keys.get_key(store, "dev")
    assert dev.digest == config.key_digest("sk-dev-secret")
    assert dev.credit_limit_nano == 12_500_000_000
    assert (await accounts.get_account(store, "frozen")).blocked
    assert (await policies.get_insurance_rule(store, "slow-first-token")).cap_per_day_nano == (
        20_000_000_000
    )
    team = await policies.get_rate_limit_policy(store, "team-tokens")
    assert (team.applies_to, team.subjects, team.models, team.tpm) == (
        "account",
        ["team"],
        ["openai/*"],
        50_000,
    )
    assert (await policies.get_rate_limit_policy(store, "default-key")).subjects == []

    # The export loads into an empty store and exports the same again.
    fresh = await without_defaults(await Store.open(f"sqlite:///{tmp_path / 'fresh.db'}"))
    try:
        await import_config(fresh, parse(exported))
        assert await export_config(fresh) == exported
    finally:
        await fresh.close()


async def test_import_updates_in_place(store: Store) -> None:
    await import_config(store, parse(CONFIG))
    changed = CONFIG.replace("weight = 2", "weight = 7").replace(
        'secret = "sk-dev-secret"', 'secret = "sk-dev-rotated"'
    )
    warnings = await import_config(store, parse(changed))
    assert (await catalog.get_channel(store, "direct")).weight == 7
    assert len(await catalog.list_channels(store)) == 2
    # A key's secret is never replaced by a file: it could be one an operator rotated away.
    assert (await keys.get_key(store, "dev")).digest == config.key_digest("sk-dev-secret")
    assert [w.split(":")[0] for w in warnings] == ["keys.dev.secret"]


async def test_an_import_never_brings_back_a_rotated_secret(store: Store) -> None:
    await import_config(store, parse(CONFIG))
    _, rotated = await keys.rotate_key(store, "dev")

    warnings = await import_config(store, parse(CONFIG))

    assert (await keys.get_key(store, "dev")).digest == keys.digest_of(rotated)
    assert [w.split(":")[0] for w in warnings] == ["keys.dev.secret"]


async def test_a_failing_import_changes_nothing(store: Store) -> None:
    await catalog.create_model(store, "taken/model", aliases=["mini-alias"])
    clash = CONFIG.replace('aliases = ["gpt-4o-mini"]', 'aliases = ["mini-alias"]')
    with pytest.raises(Conflict):
        await import_config(store, parse(clash))
    assert await catalog.list_providers(store) == []
    assert [m.slug for m in await catalog.list_models(store)] == ["taken/model"]
    assert await accounts.list_accounts(store) == []


async def test_invalid_files_are_refused_before_touching_the_store(store: Store) -> None:
    broken = CONFIG.replace('provider = "mirror"', 'provider = "nowhere"')
    with pytest.raises(config.ConfigError, match="nowhere"):
        await import_config(store, parse(broken))
    assert await catalog.list_providers(store) == []


async def test_provider_secrets_in_the_file_are_refused(store: Store) -> None:
    """A header value or a URL with credentials would be stored and exported in clear: the
    file names environment variables instead, and the error does not repeat the secret."""
    plain_headers = CONFIG.replace("headers_env = ", "headers = ")
    with pytest.raises(msgspec.ValidationError, match="headers"):
        parse(plain_headers)
    in_url = CONFIG.replace("https://api.openai.com/v1", "https://org:hunter2@api.openai.com/v1")
    with pytest.raises(config.ConfigError, match=r"providers\.openai\.base_url") as refused:
        await import_config(store, parse(in_url))
    assert "hunter2" not in str(refused.value)
    bad_env = CONFIG.replace('"OPENAI_ORG"', '"org-1 value"')
    with pytest.raises(config.ConfigError, match=r"headers_env\.OpenAI-Organization"):
        await import_config(store, parse(bad_env))
    assert await catalog.list_providers(store) == []


FULL_RULES = """
[[insurance_rules]]
id = "slow"
trigger = "high_latency"
description = "slow first token for the team"
params = { ttft_ms = 4000, p50_multiple = 2.5 }
models = ["openai/*"]
channels = ["direct"]
accounts = ["team"]
payout_percent = 25
cap_per_request = "0.5"
cap_per_day = "2"
min_cost = "0.001"

[[insurance_rules]]
id = "judged"
trigger = "hallucination"
params = { sample_rate = 0.05, judge_model = "openai/gpt-4o" }
enabled = false

[[insurance_rules]]
id = "crawl"
trigger = "low_throughput"
threshold = 12.5
"""


async def test_every_field_of_a_rule_round_trips(store: Store) -> None:
    """Parameters, account scope and minimum cost travel through the file like the rest, and
    the export needs no note about anything kept in the store only."""
    await import_config(store, parse(FULL_RULES))
    slow = await policies.get_insurance_rule(store, "slow")
    assert slow.params == {"ttft_ms": 4000, "p50_multiple": 2.5}
    assert (slow.models, slow.channels, slow.accounts) == (["openai/*"], ["direct"], ["team"])
    assert (slow.payout_percent, slow.description) == (25, "slow first token for the team")
    assert (slow.cap_per_request_nano, slow.cap_per_day_nano, slow.min_cost_nano) == (
        500_000_000,
        2_000_000_000,
        1_000_000,
    )
    judged = await policies.get_insurance_rule(store, "judged")
    assert judged.params == {"sample_rate": 0.05, "judge_model": "openai/gpt-4o"}
    assert not judged.enabled
    # The legacy `threshold` is the measured trigger's main parameter; defaults fill the rest.
    crawl = await policies.get_insurance_rule(store, "crawl")
    assert crawl.params == {"min_tokens_per_second": 12.5, "min_output_tokens": 50}

    exported = await export_config(store)
    assert "in the store only" not in exported and "threshold" not in exported
    assert "params = { ttft_ms = 4000, p50_multiple = 2.5 }" in exported
    assert 'accounts = ["team"]' in exported and 'min_cost = "0.001"' in exported
    before = {r.id: r for r in await policies.list_insurance_rules(store)}
    for rule in before:
        await policies.delete_insurance_rule(store, rule)
    await import_config(store, parse(exported))
    after = {r.id: r for r in await policies.list_insurance_rules(store)}
    strip = ("created_at",)
    assert {
        i: {k: v for k, v in msgspec.structs.asdict(r).items() if k not in strip}
        for i, r in after.items()
    } == {
        i: {k: v for k, v in msgspec.structs.asdict(r).items() if k not in strip}
        for i, r in before.items()
    }
    assert await export_config(store) == exported


async def test_a_rules_parameters_in_the_file_replace_the_stored_ones(store: Store) -> None:
    await policies.create_insurance_rule(
        store, "slow", trigger="high_latency", params={"ttft_ms": 4000, "p50_multiple": 2.5}
    )
    # Without params (or with only the legacy threshold) the stored parameters are kept...
    await import_config(
        store, parse('[[insurance_rules]]\nid = "slow"\ntrigger = "high_latency"\n')
    )
    assert (await policies.get_insurance_rule(store, "slow")).params == {
        "ttft_ms": 4000,
        "p50_multiple": 2.5,
    }
    await import_config(
        store,
        parse('[[insurance_rules]]\nid = "slow"\ntrigger = "high_latency"\nthreshold = 900\n'),
    )
    assert (await policies.get_insurance_rule(store, "slow")).params == {
        "ttft_ms": 900,
        "p50_multiple": 2.5,
    }
    # ... and given, they are the whole set.
    await import_config(
        store,
        parse(
            '[[insurance_rules]]\nid = "slow"\ntrigger = "high_latency"\n'
            "params = { p50_multiple = 4.0 }\n"
        ),
    )
    assert (await policies.get_insurance_rule(store, "slow")).params == {"p50_multiple": 4.0}


async def test_a_rule_parameter_the_trigger_does_not_take_is_refused(store: Store) -> None:
    bad = '[[insurance_rules]]\nid = "x"\ntrigger = "failed_stream"\nparams = { ttft_ms = 5 }\n'
    with pytest.raises(Invalid, match="failed_stream takes no parameter 'ttft_ms'"):
        await import_config(store, parse(bad))
    assert "x" not in {r.id for r in await policies.list_insurance_rules(store)}


ROUTING = """
[[providers]]
id = "openai"
base_url = "https://api.openai.com/v1"

[[models]]
slug = "openai/gpt-4o"
aliases = ["gpt-4o"]
max_attempts = 2
  [[models.channels]]
  id = "4o@openai"
  provider = "openai"
  upstream_model = "gpt-4o"

[[models]]
slug = "openai/gpt-4o-mini"

[[accounts]]
id = "team"
default_fallback = "gpt-4o:openai"

[[accounts]]
id = "solo"
"""


async def test_routing_settings_round_trip(store: Store, tmp_path: Path) -> None:
    """A model's attempts and an account's default fallback travel through the file; a file
    that leaves an account's fallback out keeps the one the account set itself, "" clears it."""
    await import_config(store, parse(ROUTING))
    assert (await catalog.get_model(store, "openai/gpt-4o")).max_attempts == 2
    assert (await catalog.get_model(store, "openai/gpt-4o-mini")).max_attempts is None
    assert (await accounts.get_account(store, "team")).default_fallback == "gpt-4o:openai"
    assert (await accounts.get_account(store, "solo")).default_fallback is None
    exported = await export_config(store)
    assert 'default_fallback = "gpt-4o:openai"' in exported
    assert "max_attempts = 2" in exported
    fresh = await without_defaults(await Store.open(f"sqlite:///{tmp_path / 'fresh.db'}"))
    try:
        await import_config(fresh, parse(exported))
        assert await export_config(fresh) == exported
        assert (await accounts.get_account(fresh, "team")).default_fallback == "gpt-4o:openai"
    finally:
        await fresh.close()

    await accounts.update_account(store, "solo", default_fallback="openai/gpt-4o-mini")
    await import_config(store, parse(ROUTING))
    assert (await accounts.get_account(store, "solo")).default_fallback == "openai/gpt-4o-mini"
    cleared = ROUTING.replace('default_fallback = "gpt-4o:openai"', 'default_fallback = ""')
    await import_config(store, parse(cleared.replace("max_attempts = 2\n", "")))
    assert (await accounts.get_account(store, "team")).default_fallback is None
    assert (await catalog.get_model(store, "openai/gpt-4o")).max_attempts is None


async def test_a_fallback_the_store_cannot_route_is_refused_with_its_path(store: Store) -> None:
    bad = ROUTING.replace('"gpt-4o:openai"', '"gpt-4o:azure"')
    with pytest.raises(Invalid, match=r"accounts\.team\.default_fallback: no provider or channel"):
        await import_config(store, parse(bad))
    assert await accounts.list_accounts(store) == []
    assert await catalog.list_models(store) == []
    with pytest.raises(config.ConfigError, match=r"models\.openai/gpt-4o\.max_attempts"):
        await import_config(store, parse(ROUTING.replace("max_attempts = 2", "max_attempts = 21")))


async def test_a_policys_subjects_are_checked_and_named_by_path(store: Store) -> None:
    """Subjects name keys or accounts of the file or the store, as `applies_to` says; a key
    id given to an account policy is refused with the field's path, and nothing is imported."""
    wrong = CONFIG.replace('subjects = ["team"]', 'subjects = ["team", "dev"]')
    with pytest.raises(
        Invalid, match=r"rate_limit_policies\.team-tokens\.subjects\[1\]: unknown account 'dev'"
    ):
        await import_config(store, parse(wrong))
    assert await policies.list_rate_limit_policies(store) == []
    assert await accounts.list_accounts(store) == []
    twice = CONFIG + '\n[[rate_limit_policies]]\nid = "default-key"\napplies_to = "key"\nrpm = 1\n'
    with pytest.raises(config.ConfigError, match="rate_limit_policies: duplicate id 'default-key'"):
        await import_config(store, parse(twice))


async def test_a_policy_naming_only_revoked_keys_is_left_out_of_the_export(store: Store) -> None:
    """Revoked keys are not exported, so neither are they as subjects; a policy naming nothing
    else is left out with a note rather than exported as one limiting every key."""
    await import_config(store, parse(CONFIG))
    await policies.create_rate_limit_policy(
        store, "dev-and-ci", applies_to="key", subjects=["dev", "ci"], rpm=5
    )
    await policies.create_rate_limit_policy(
        store, "ci-only", applies_to="key", subjects=["ci"], rpm=1
    )
    await keys.revoke_key(store, "ci")
    exported = await export_config(store)
    assert "rate-limit policy 'ci-only' left out: it names only revoked keys" in exported
    document = tomllib.loads(exported)
    shown = {p["id"]: p["subjects"] for p in document["rate_limit_policies"]}
    assert shown == {"default-key": [], "dev-and-ci": ["dev"], "team-tokens": ["team"]}


async def test_an_import_never_loosens_what_an_operator_restricted(store: Store) -> None:
    """A restart with the same file must not undo the admin API: a disabled key stays
    disabled, narrowed models and lowered limits stay, an earlier expiry stays, and a blocked
    account stays blocked; each loosening left out is a warning."""
    assert await import_config(store, parse(CONFIG)) == []
    await keys.update_key(
        store,
        "dev",
        enabled=False,
        models=["openai/gpt-4o-mini"],
        rpm_limit=10,
        credit_limit_nano=1_000_000_000,
        expires_at=datetime(2030, 6, 1, tzinfo=UTC),
    )
    await accounts.update_account(store, "team", blocked=True)

    warnings = await import_config(store, parse(CONFIG))

    dev = await keys.get_key(store, "dev")
    assert not dev.enabled
    assert dev.models == ["openai/gpt-4o-mini"]
    assert (dev.rpm_limit, dev.tpm_limit) == (10, 100_000)
    assert dev.credit_limit_nano == 1_000_000_000
    assert dev.expires_at == datetime(2030, 6, 1, tzinfo=UTC)
    assert (await accounts.get_account(store, "team")).blocked
    named = sorted(w.split(":")[0] for w in warnings)
    assert named == [
        "accounts.team.blocked",
        "keys.dev.credit_limit",
        "keys.dev.enabled",
        "keys.dev.expires_at",
        "keys.dev.models",
        "keys.dev.rpm_limit",
    ]
    assert "stored $1, file $12.5" in next(w for w in warnings if "credit_limit" in w)


async def test_an_import_narrows_a_key_and_leaves_out_only_what_would_loosen(
    store: Store,
) -> None:
    """Each field on its own: the file's value is taken where it restricts the key at least as
    much as the stored one."""
    await import_config(store, parse(CONFIG))
    narrower = (
        CONFIG.replace('models = ["openai/*"]', 'models = ["openai/gpt-4o", "openai/o3*"]')
        .replace("rpm_limit = 60", "rpm_limit = 90")
        .replace("tpm_limit = 100000", "tpm_limit = 500")
        .replace("expires_at = 2031-01-01T00:00:00Z", "")
        .replace('name = "developer key"', 'name = "renamed"')
    )
    warnings = await import_config(store, parse(narrower))
    dev = await keys.get_key(store, "dev")
    assert dev.models == ["openai/gpt-4o", "openai/o3*"]
    assert dev.name == "renamed"
    assert (dev.rpm_limit, dev.tpm_limit) == (60, 500)
    assert dev.expires_at == datetime(2031, 1, 1, tzinfo=UTC)
    assert sorted(w.split(":")[0] for w in warnings) == [
        "keys.dev.expires_at",
        "keys.dev.rpm_limit",
    ]
    # Even a key the file itself disabled stays disabled when the file enables it: the store
    # cannot tell who disabled it, so only the admin API enables a key.
    await import_config(store, parse(narrower.replace("enabled = false", "enabled = true")))
    assert not (await keys.get_key(store, "ci")).enabled


@pytest.mark.parametrize(
    ("narrow", "wide", "within"),
    [
        (["openai/gpt-4o"], ["openai/*"], True),
        (["openai/o3*"], ["openai/*"], True),
        (["openai/*"], ["openai/o3*"], False),
        (["open*"], ["openai/*"], False),
        ([], ["openai/*"], False),
        (["x/y"], [], True),
        ([], [], True),
        (["a/b", "c/d"], ["a/b"], False),
        (["a/b"], ["*"], True),
    ],
)
def test_models_within(narrow: list[str], wide: list[str], within: bool) -> None:
    assert models_within(narrow, wide) is within


async def test_a_revoked_key_in_the_file_is_skipped_with_a_warning(store: Store) -> None:
    await import_config(store, parse(CONFIG))
    await keys.revoke_key(store, "dev")
    changed = CONFIG.replace("weight = 2", "weight = 5")
    warnings = await import_config(store, parse(changed))
    assert warnings == ["keys.dev: the key is revoked; skipped (a revoked key stays revoked)"]
    dev = await keys.get_key(store, "dev")
    assert dev.revoked_at is not None
    assert not dev.enabled
    # The rest of the file was imported.
    assert (await catalog.get_channel(store, "direct")).weight == 5
