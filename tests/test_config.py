"""The TOML configuration: validation with field paths, and exact money conversion."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from muxgate import config
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
