"""The TOML configuration as an import/export format: import -> export -> import is stable,
secrets never appear in the export, and a failing import changes nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import pytest

from muxgate import config
from muxgate.store import Conflict, Store, accounts, catalog, keys, policies, settings
from muxgate.store.config_io import export_config, import_config

CONFIG = """
[gateway]
keepalive_seconds = 15
max_attempts = 4

[[providers]]
id = "openai"
base_url = "https://api.openai.com/v1"
credential_env = "OPENAI_API_KEY"
headers = { "OpenAI-Organization" = "org-1" }
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
""" % ("ab" * 32)


def parse(text: str) -> config.ConfigFile:
    return msgspec.convert(tomllib.loads(text), config.ConfigFile)


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
    assert (await catalog.get_provider(store, "openai")).headers == {"OpenAI-Organization": "org-1"}
    dev = await keys.get_key(store, "dev")
    assert dev.digest == config.key_digest("sk-dev-secret")
    assert dev.credit_limit_nano == 12_500_000_000
    assert (await accounts.get_account(store, "frozen")).blocked
    assert (await policies.get_insurance_rule(store, "slow-first-token")).cap_per_day_nano == (
        20_000_000_000
    )

    # The export loads into an empty store and exports the same again.
    fresh = await Store.open(f"sqlite:///{tmp_path / 'fresh.db'}")
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
    await import_config(store, parse(changed))
    assert (await catalog.get_channel(store, "direct")).weight == 7
    assert (await keys.get_key(store, "dev")).digest == config.key_digest("sk-dev-rotated")
    assert len(await catalog.list_channels(store)) == 2


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
