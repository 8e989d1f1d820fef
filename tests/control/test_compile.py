"""compile_snapshot: the routing state from the store, versioned, secrets still encrypted,
every key not revoked; and the engine accepts the result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from factories import usage_event
from muxgate import wire
from muxgate._native import Engine
from muxgate.control import compile_snapshot
from muxgate.control.routing import medians_moved, stored_snapshot
from muxgate.store import Store, accounts, catalog, keys, ledger, policies, settings, usage
from muxgate.wire import RoutingSnapshot, UsageEvent

NOW = datetime.now(UTC)


async def seed(store: Store) -> dict[str, str]:
    await catalog.create_provider(
        store, "openai", base_url="https://api.openai.com/v1", credential_env="OPENAI_API_KEY"
    )
    await catalog.create_provider(
        store,
        "vault",
        base_url="http://127.0.0.1:9/v1",
        credential="sk-vault",
        headers_env={"X": "X_ENV"},
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
    assert providers["vault"].headers_env == [("X", "X_ENV")]

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

    # Every key but the revoked one, marked so the engine says why it refuses one.
    listed = {k.id: k for k in snapshot.keys}
    assert set(listed) == {"live", "soon", "expired", "disabled", "capped"}
    assert listed["live"].digest == digests["live"]
    assert listed["live"].models == ["openai/*"]
    assert listed["live"].expires_at == int((NOW + timedelta(days=2)).timestamp() * 1000)
    assert listed["expired"].expires_at == int((NOW - timedelta(seconds=1)).timestamp() * 1000)
    assert listed["disabled"].expires_at is None
    assert not listed["disabled"].enabled
    assert [k for k, v in listed.items() if v.credit_exhausted] == ["capped"]

    later = await compile_snapshot(store, now=NOW + timedelta(hours=2))
    assert later.version == 2
    assert {k.id for k in later.keys} == set(listed)
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


async def test_insurance_rules_retention_and_medians_reach_the_snapshot(store: Store) -> None:
    """Enabled rules in id order with their trigger, scope and payout (percent as basis
    points); the accounts' retention choice; each model's recent TTFT median (20 samples at
    least); and the engine takes all of it."""
    await seed(store)
    await accounts.update_account(store, "acme", retain_content=True)
    await policies.update_insurance_rule(store, "low-throughput", enabled=False)
    await policies.create_insurance_rule(
        store,
        "judge",
        trigger="hallucination",
        params={"sample_rate": 0.25, "judge_model": "openai/gpt-4o-mini"},
        models=["openai/*"],
        channels=["a"],
        accounts=["acme"],
        payout_percent=7,
        cap_per_request_nano=5,
        min_cost_nano=2,
    )
    streamed = [
        usage_event(
            f"t{i}",
            created_ms=int((NOW - timedelta(minutes=5)).timestamp() * 1000),
            account_id="acme",
            stream=True,
            ttft_ms=float(200 + i),
        )
        for i in range(25)
    ]
    await usage.record_usage(store, streamed)
    snapshot = await compile_snapshot(store, now=NOW)

    rules = {r.id: r for r in snapshot.insurance}
    assert [r.id for r in snapshot.insurance] == [
        "failed-stream",
        "high-latency",
        "judge",
        "unsatisfactory-content",
    ]
    assert rules["failed-stream"].trigger == wire.FailedStream()
    assert rules["high-latency"].trigger == wire.HighLatency(ttft_ms=5000, p50_multiple=3.0)
    assert rules["high-latency"].payout == wire.Payout(
        share_bp=5000, max_per_request=None, min_cost=0, max_per_account_day=10_000_000_000
    )
    assert rules["unsatisfactory-content"].trigger == wire.UnsatisfactoryContent(
        repetition_ngram=8, repetition_max=12
    )
    judge = rules["judge"]
    assert judge.trigger == wire.Hallucination(sample_rate=0.25, judge_model="openai/gpt-4o-mini")
    assert judge.scope == wire.InsuranceScope(
        models=["openai/*"], channels=["a"], accounts=["acme"]
    )
    assert judge.payout == wire.Payout(
        share_bp=700, max_per_request=5, min_cost=2, max_per_account_day=None
    )
    retained = {a.id: a.retain_content for a in snapshot.accounts}
    assert retained == {"acme": True, "stopped": False, "empty": False}
    [model] = snapshot.models
    assert model.ttft_p50_ms == 212.0
    # An hour later the samples are too old: no median, the absolute threshold alone decides.
    later = await compile_snapshot(store, now=NOW + timedelta(hours=1))
    assert later.models[0].ttft_p50_ms is None

    engine = Engine()
    engine.load_snapshot(snapshot.encode())
    assert engine.routing_version == snapshot.version


async def test_rate_limits_reach_the_snapshot_with_their_precedence(store: Store) -> None:
    """Enabled policies and the usable keys' own limits, in id order, each with the priority
    that makes the more particular setting win: a key's own (30), a policy naming subjects
    (20), one naming models (10), a global one (0). The encoded snapshot decodes to the same."""
    await seed(store)
    await policies.update_rate_limit_policy(store, "image-models", enabled=False)
    await policies.create_rate_limit_policy(
        store, "acme-tokens", applies_to="account", subjects=["acme"], tpm=200_000
    )
    await policies.create_rate_limit_policy(
        store, "every-account", applies_to="account", rpm=1_000, burst=50
    )
    await policies.create_rate_limit_policy(
        store,
        "live-mini",
        applies_to="key",
        subjects=["live"],
        models=["openai/gpt-4o-mini"],
        rpm=5,
    )
    await keys.update_key(store, "live", rpm_limit=30)
    await keys.update_key(store, "soon", tpm_limit=40_000)
    # Keys the gateway does not accept bring no limits of their own.
    await keys.update_key(store, "expired", rpm_limit=1)
    await keys.update_key(store, "disabled", rpm_limit=1)
    snapshot = await compile_snapshot(store, now=NOW)

    gpt = ["openai/gpt-3*", "openai/gpt-4*", "openai/gpt-5*", "openai/gpt-oss-*"]
    assert snapshot.limits == [
        wire.RateLimit(
            id="acme-tokens", scope="account", subjects=["acme"], tpm=200_000, priority=20
        ),
        wire.RateLimit(
            id="claude-models",
            scope="key",
            models=["anthropic/claude-*"],
            rpm=100,
            burst=100,
            priority=10,
        ),
        wire.RateLimit(id="every-account", scope="account", rpm=1_000, burst=50, priority=0),
        wire.RateLimit(id="gpt-models", scope="key", models=gpt, rpm=60, burst=60, priority=10),
        wire.RateLimit(id="key:live", scope="key", subjects=["live"], rpm=30, priority=30),
        wire.RateLimit(id="key:soon", scope="key", subjects=["soon"], tpm=40_000, priority=30),
        wire.RateLimit(
            id="live-mini",
            scope="key",
            subjects=["live"],
            models=["openai/gpt-4o-mini"],
            rpm=5,
            priority=20,
        ),
    ]
    assert msgspec.msgpack.decode(snapshot.encode(), type=RoutingSnapshot) == snapshot
    decoded = msgspec.msgpack.decode(snapshot.encode())
    assert decoded["limits"][4] == {
        "id": "key:live",
        "scope": "key",
        "subjects": ["live"],
        "models": [],
        "rpm": 30,
        "tpm": None,
        "burst": None,
        "priority": 30,
    }

    # A key that stops being usable takes its own limits out with it.
    later = await compile_snapshot(store, now=NOW + timedelta(hours=2))
    assert [limit.id for limit in later.limits if limit.id.startswith("key:")] == ["key:live"]

    engine = Engine()
    engine.load_snapshot(snapshot.encode())
    assert engine.routing_version == snapshot.version


async def test_a_channel_takes_the_timeouts_it_does_not_set_from_its_model(store: Store) -> None:
    """Each timeout is the channel's own, else its model's, else the built-in default; a
    model's change reaches its channels in the next snapshot."""
    await catalog.create_provider(store, "p", base_url="https://p.test/v1")
    await catalog.create_model(
        store, "a/tuned", first_byte_timeout_ms=5_000, total_timeout_ms=90_000
    )
    await catalog.create_model(store, "a/plain")
    for cid, slug, own in (
        ("inherits", "a/tuned", {}),
        ("own", "a/tuned", {"first_byte_timeout_ms": 2_000, "idle_timeout_ms": 30_000}),
        ("defaults", "a/plain", {}),
    ):
        await catalog.create_channel(
            store, cid, model_slug=slug, provider_id="p", upstream_model="x", **own
        )

    def timeouts(snapshot: RoutingSnapshot) -> dict[str, wire.Timeouts]:
        return {c.id: c.timeouts for m in snapshot.models for c in m.channels}

    snapshot = await compile_snapshot(store, now=NOW)
    assert timeouts(snapshot) == {
        "inherits": wire.Timeouts(first_byte_ms=5_000, idle_ms=120_000, total_ms=90_000),
        "own": wire.Timeouts(first_byte_ms=2_000, idle_ms=30_000, total_ms=90_000),
        "defaults": wire.Timeouts(first_byte_ms=60_000, idle_ms=120_000, total_ms=600_000),
    }
    Engine().load_snapshot(snapshot.encode())

    await catalog.update_model(store, "a/tuned", first_byte_timeout_ms=None, idle_timeout_ms=45_000)
    await catalog.update_model(store, "a/plain", total_timeout_ms=300_000)
    assert timeouts(await compile_snapshot(store, now=NOW)) == {
        "inherits": wire.Timeouts(first_byte_ms=60_000, idle_ms=45_000, total_ms=90_000),
        "own": wire.Timeouts(first_byte_ms=2_000, idle_ms=30_000, total_ms=90_000),
        "defaults": wire.Timeouts(first_byte_ms=60_000, idle_ms=120_000, total_ms=300_000),
    }


def test_medians_move_on_a_new_model_or_a_real_change() -> None:
    assert not medians_moved({}, {})
    assert medians_moved({}, {"a/b": 100.0})
    assert medians_moved({"a/b": 100.0}, {})
    assert not medians_moved({"a/b": 100.0}, {"a/b": 109.0})
    assert medians_moved({"a/b": 100.0}, {"a/b": 111.0})
    assert medians_moved({"a/b": 100.0}, {"a/b": 89.0})
