"""The TOML configuration: validation with field paths, and exact money conversion."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from muxgate import config, wire
from muxgate._native import Engine
from muxgate.wire import RoutingSnapshot

VALID = """
[gateway]
port = 9000

[[providers]]
id = "openai"
base_url = "https://api.openai.com/v1"
credential_env = "OPENAI_API_KEY"

[[models]]
slug = "openai/gpt-4o-mini"
aliases = ["gpt-4o-mini"]
  [[models.channels]]
  id = "direct"
  provider = "openai"
  upstream_model = "gpt-4o-mini"
  weight = 2
  price = { prompt = "0.15", completion = 0.6, cached = "0.075" }
  timeouts = { first_byte_seconds = 30 }

[[accounts]]
id = "team"

[[keys]]
id = "dev"
account = "team"
secret = "sk-dev"
models = ["openai/*"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "muxgate.toml"
    path.write_text(text)
    return path


def test_valid_config_compiles_to_a_snapshot_the_engine_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = config.load(write(tmp_path, VALID))
    snapshot = config.compile_snapshot(cfg, version=5)
    channel = snapshot.models[0].channels[0]
    assert channel.price.prompt == 150_000_000
    assert channel.price.completion == 600_000_000
    assert channel.price.cached == 75_000_000
    assert channel.timeouts.first_byte_ms == 30_000
    assert snapshot.keys[0].digest == config.key_digest("sk-dev")
    decoded = msgspec.msgpack.decode(snapshot.encode(), type=RoutingSnapshot)
    assert decoded == snapshot
    warnings = Engine().load_snapshot(snapshot.encode())
    # The credential variable is not set here: the provider is disabled, loudly.
    assert any("OPENAI_API_KEY" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (("weight = 2", 'weight = "x"'), "models"),
        (
            ('provider = "openai"\n  upstream', 'provider = "nope"\n  upstream'),
            "unknown provider 'nope'",
        ),
        (('account = "team"', 'account = "ghost"'), "unknown account 'ghost'"),
        (('secret = "sk-dev"', ""), "exactly one of secret, secret_env, digest"),
        (('prompt = "0.15"', 'prompt = "-1"'), "non-negative"),
        (('prompt = "0.15"', 'prompt = "0.0000000001"'), "precision"),
        (("[gateway]", "[gateway]\nbogus = 1"), "bogus"),
        (('base_url = "https', 'base_url = "ftp'), "http:// or https://"),
        (
            ('aliases = ["gpt-4o-mini"]', 'aliases = ["gpt-4o-mini"]\nmax_attempts = 0'),
            r"models\.openai/gpt-4o-mini\.max_attempts: must be between 1 and 20",
        ),
        (('id = "team"', 'id = "team"\ndefault_fallback = 3'), "accounts"),
        (
            ("first_byte_seconds = 30", "first_byte_seconds = 0"),
            r"channels\.direct\.timeouts\.first_byte_seconds: must be between 0\.001 and 86400",
        ),
        (
            (
                'aliases = ["gpt-4o-mini"]',
                'aliases = ["gpt-4o-mini"]\ntimeouts = { idle_seconds = -1 }',
            ),
            r"models\.openai/gpt-4o-mini\.timeouts\.idle_seconds: must be between",
        ),
    ],
)
def test_invalid_configs_name_the_field(
    tmp_path: Path, patch: tuple[str, str], message: str
) -> None:
    text = VALID.replace(*patch)
    assert text != VALID
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError, match=message):
        load_and_compile(path)


def test_routing_settings_reach_the_snapshot(tmp_path: Path) -> None:
    text = VALID.replace('aliases = ["gpt-4o-mini"]', 'aliases = ["gpt-4o-mini"]\nmax_attempts = 2')
    text = text.replace('id = "team"', 'id = "team"\ndefault_fallback = "gpt-4o-mini:openai"')
    snapshot = config.compile_snapshot(config.load(write(tmp_path, text)), version=1)
    assert snapshot.models[0].max_attempts == 2
    assert snapshot.accounts[0].default_fallback == "gpt-4o-mini:openai"
    plain = config.compile_snapshot(config.load(write(tmp_path, VALID)), version=1)
    assert (plain.models[0].max_attempts, plain.accounts[0].default_fallback) == (None, None)


def test_a_models_timeouts_reach_its_channels_without_their_own(tmp_path: Path) -> None:
    """Each timeout is the channel's own, else its model's, else the built-in default."""
    text = VALID.replace(
        'aliases = ["gpt-4o-mini"]',
        'aliases = ["gpt-4o-mini"]\ntimeouts = { first_byte_seconds = 5, total_seconds = 90 }',
    )
    text += (
        '\n[[models]]\nslug = "openai/gpt-4o"\n'
        '  [[models.channels]]\n  id = "plain"\n  provider = "openai"\n'
        '  upstream_model = "gpt-4o"\n'
    )
    text = text.replace(
        "[[accounts]]",
        '  [[models.channels]]\n  id = "inherits"\n  provider = "openai"\n'
        '  upstream_model = "gpt-4o-mini"\n\n[[accounts]]',
    )
    snapshot = config.compile_snapshot(config.load(write(tmp_path, text)), version=1)
    timeouts = {c.id: c.timeouts for m in snapshot.models for c in m.channels}
    assert timeouts == {
        "direct": wire.Timeouts(first_byte_ms=30_000, idle_ms=120_000, total_ms=90_000),
        "inherits": wire.Timeouts(first_byte_ms=5_000, idle_ms=120_000, total_ms=90_000),
        "plain": wire.Timeouts(first_byte_ms=60_000, idle_ms=120_000, total_ms=600_000),
    }
    Engine().load_snapshot(snapshot.encode())


def load_and_compile(path: Path) -> None:
    config.compile_snapshot(config.load(path), version=1)


def test_duplicate_aliases_are_rejected(tmp_path: Path) -> None:
    text = VALID + '\n[[models]]\nslug = "gpt-4o-mini"\n'
    with pytest.raises(config.ConfigError, match="duplicate id 'gpt-4o-mini'"):
        config.load(write(tmp_path, text))


def test_channel_ids_are_unique_across_models(tmp_path: Path) -> None:
    text = VALID + (
        '\n[[models]]\nslug = "openai/gpt-4o"\n'
        '  [[models.channels]]\n  id = "direct"\n  provider = "openai"\n'
        '  upstream_model = "gpt-4o"\n'
    )
    with pytest.raises(config.ConfigError, match=r"models\.channels: duplicate id 'direct'"):
        config.load(write(tmp_path, text))


def test_engine_rejects_garbage_and_older_snapshots() -> None:
    engine = Engine()
    with pytest.raises(ValueError, match="invalid routing snapshot"):
        engine.load_snapshot(b"\x00garbage")
    engine.load_snapshot(RoutingSnapshot(version=3).encode())
    assert engine.routing_version == 3
    with pytest.raises(ValueError, match="older"):
        engine.load_snapshot(RoutingSnapshot(version=2).encode())
    assert engine.routing_version == 3


RULES = """
[[insurance_rules]]
id = "slow"
trigger = "high_latency"
params = { ttft_ms = 4000, p50_multiple = 2.5 }
accounts = ["team"]
min_cost = "0.001"

[[insurance_rules]]
id = "crawl"
trigger = "low_throughput"
threshold = 12.5
"""


def test_insurance_rules_carry_every_field(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, VALID + RULES))
    slow, crawl = cfg.insurance_rules
    assert slow.params == {"ttft_ms": 4000, "p50_multiple": 2.5}
    assert (slow.accounts, slow.min_cost) == (["team"], "0.001")
    assert config.rule_params(slow) == {"ttft_ms": 4000, "p50_multiple": 2.5}
    # The legacy threshold is the trigger's main parameter (whole milliseconds for latency).
    assert config.rule_params(crawl) == {"min_tokens_per_second": 12.5}
    latency = msgspec.structs.replace(slow, params=None, threshold=2500.4)
    assert config.rule_params(latency) == {"ttft_ms": 2500}
    # The same threshold given twice is no contradiction.
    config.validate(
        msgspec.structs.replace(
            cfg, insurance_rules=[msgspec.structs.replace(slow, threshold=4000.0)]
        )
    )


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            ('trigger = "low_throughput"', 'trigger = "failed_stream"'),
            r"insurance_rules\.crawl\.threshold: failed_stream takes no threshold",
        ),
        (
            ("threshold = 12.5", "threshold = 12.5\nparams = { min_tokens_per_second = 3.0 }"),
            r"disagrees with params\.min_tokens_per_second",
        ),
        (('id = "crawl"', 'id = "slow"'), "insurance_rules: duplicate id 'slow'"),
        (("ttft_ms = 4000", "ttft_ms = true"), "insurance_rules"),
        (('min_cost = "0.001"', 'min_cost = "0.001"\nbogus = 1'), "bogus"),
    ],
)
def test_invalid_insurance_rules_name_the_field(
    tmp_path: Path, patch: tuple[str, str], message: str
) -> None:
    text = (VALID + RULES).replace(*patch)
    assert text != VALID + RULES
    with pytest.raises(config.ConfigError, match=message):
        config.load(write(tmp_path, text))
