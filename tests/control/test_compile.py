"""compile_snapshot: the routing state from the store, versioned, secrets still encrypted,
only usable keys; and the engine accepts the result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from factories import usage_event
from muxgate._native import Engine
from muxgate.control import compile_snapshot, next_key_expiry
from muxgate.control.routing import stored_snapshot
from muxgate.store import Store, accounts, catalog, keys, ledger, settings, usage
from muxgate.wire import RoutingSnapshot, UsageEvent

NOW = datetime.now(UTC)


async def seed(store: Store) -> dict[str, str]:
    await catalog.create_provider(
        store, "openai", base_url="https://api.openai.com/v1", credential_env="OPENAI_API_KEY"
    )
    await catalog.create_provider(
        store, "vault", base_url="http://127.0.0.1:9/v1", credential="sk-vault", headers={"X": "1"}
    )
    await catalog.create_model(store, "openai/gpt-4o-mini", aliases=["mini"], context_length=1000)
    for cid, provider, enabled in (("a", "openai", True), ("b", "vault", False)):
        await catalog.create_channel(
            store,
            cid,
            model_slug="openai/gpt-4o-mini",
            provider_id=provider,
            upstream_model="gpt-4o-mini",
            price_prompt_nano=150_000_000,
            price_completion_nano=600_000_000,
            enabled=enabled,
        )
    await accounts.create_account(store, "acme")
    await accounts.create_account(store, "stopped", blocked=True)
    await settings.update_settings(store, trial_credit_nano=0)
    await accounts.create_account(store, "empty")
    ids: dict[str, str] = {}
    for name, extra in (
        ("live", {"models": ["openai/*"], "expires_at": NOW + timedelta(days=2)}),
        ("soon", {"expires_at": NOW + timedelta(hours=1)}),
        ("expired", {"expires_at": NOW - timedelta(seconds=1)}),
        ("disabled", {"enabled": False}),
        ("capped", {"credit_limit_nano": 10}),
    ):
        record, _ = await keys.create_key(store, account_id="acme", key_id=name, **extra)
        ids[name] = record.digest
    await keys.create_key(store, account_id="acme", key_id="revoked")
    await keys.revoke_key(store, "revoked")
    return ids


def spend(key: str, cost: int) -> UsageEvent:
    return usage_event(
        f"req-{key}",
        created_ms=int(NOW.timestamp() * 1000),
        account_id="acme",
        key_id=key,
        cost_nano_usd=cost,
    )


async def test_snapshot_content(store: Store) -> None:
    digests = await seed(store)
    await usage.record_usage(store, [spend("capped", 10)])
    snapshot = await compile_snapshot(store, now=NOW)

    assert snapshot.version == 1
    providers = {p.id: p for p in snapshot.providers}
    assert providers["openai"].credential_env == "OPENAI_API_KEY"
    assert providers["openai"].credential_encrypted is None
    sealed = providers["vault"].credential_encrypted
    assert sealed is not None
    assert "sk-vault" not in sealed
    assert store.cipher.decrypt(sealed) == "sk-vault"
    assert providers["vault"].headers == [("X", "1")]

    [model] = snapshot.models
    assert (model.slug, model.aliases, model.context_length) == (
        "openai/gpt-4o-mini",
        ["mini"],
        1000,
    )
    assert {(c.id, c.enabled) for c in model.channels} == {("a", True), ("b", False)}
    assert model.channels[0].price.cached == 150_000_000

    blocked = {a.id: a.blocked for a in snapshot.accounts}
    assert blocked == {"acme": False, "stopped": True, "empty": True}

    live = {k.id: k for k in snapshot.keys}
    assert set(live) == {"live", "soon"}
    assert live["live"].digest == digests["live"]
    assert live["live"].models == ["openai/*"]

    assert await next_key_expiry(store, now=NOW) == datetime.fromisoformat(
        (NOW + timedelta(hours=1)).isoformat()
    )
    later = await compile_snapshot(store, now=NOW + timedelta(hours=2))
    assert later.version == 2
    assert {k.id for k in later.keys} == {"live"}
    version, stored = await stored_snapshot(store)
    assert version == 2
    assert stored is not None
    assert msgspec.msgpack.decode(stored, type=RoutingSnapshot) == later


async def test_top_up_unblocks_in_the_next_snapshot(store: Store) -> None:
    await settings.update_settings(store, trial_credit_nano=0)
    await accounts.create_account(store, "acme")
    assert (await compile_snapshot(store)).accounts[0].blocked
    await ledger.add_entry(store, "acme", "top_up", 1)
    assert not (await compile_snapshot(store)).accounts[0].blocked


async def test_the_engine_loads_a_compiled_snapshot(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine ignores `credential_encrypted` and takes the rest."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    await seed(store)
    snapshot = await compile_snapshot(store, now=NOW)
    engine = Engine()
    warnings = engine.load_snapshot(snapshot.encode())
    assert engine.routing_version == snapshot.version
    assert any("OPENAI_API_KEY" in w for w in warnings), warnings
