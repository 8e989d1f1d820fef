"""The shipped migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from muxgate.store import Store, accounts, cases, catalog, keys, ledger, policies
from muxgate.store import tables as t
from muxgate.store.migrations import alembic_config, upgrade
from muxgate.store.store import async_url
from muxgate.store.tables import metadata
from store.conftest import _admin


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_tables(store: Store) -> None:
    async with store.read() as conn:
        assert await conn.run_sync(_diff) == []


async def test_opening_again_is_a_no_op(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    again = await Store.open(url)
    await again.close()


async def test_running_sums_are_computed_from_an_existing_ledger(tmp_path: Path) -> None:
    """A store written before the running sums existed gets them from its entries."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        upgrade(conn, "0002")
        conn.execute(
            text(
                "INSERT INTO accounts (id, name, blocked, created_at) "
                "VALUES ('a', '', 0, '2030-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO ledger_entries (account_id, kind, purchased_nano, bonus_nano, "
                "request_id, key_id, note, created_at) VALUES "
                "('a', 'top_up', 100, 0, NULL, NULL, '', '2030-01-01'), "
                "('a', 'trial', 0, 50, NULL, NULL, '', '2030-01-01'), "
                "('a', 'charge', -7, -30, 'r1', 'k', '', '2030-01-01'), "
                "('a', 'charge', 0, -5, 'r2', 'k', '', '2030-01-01')"
            )
        )
    engine.dispose()
    store = await Store.open(url)
    try:
        assert await ledger.balance(store, "a") == ledger.Balance(purchased_nano=93, bonus_nano=15)
        async with store.read() as conn:
            assert await keys.spent(conn, ["k"]) == {"k": 42}
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, to migrate step by step."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    request.getfixturevalue("pg_url")  # skips when PostgreSQL is unreachable
    name = "muxgate_migrate_" + secrets.token_hex(6)
    _admin(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_insurance_rules_and_the_ledger_survive_0004(blank_url: str) -> None:
    """Rules written with one threshold get that threshold as their trigger's parameter, the
    default rule set joins them (an operator's rule of the same id is kept), the ledger keeps
    every entry (expiries pointing at their grants included), and a request may then carry
    several insurance credits but still only one charge."""
    engine = create_async_engine(async_url(blank_url))
    old = "'2030-01-01 00:00:00'"
    rules = (
        "INSERT INTO insurance_rules (id, description, trigger, threshold, models, channels, "
        "payout_percent, cap_per_request_nano, cap_per_day_nano, enabled, created_at) VALUES "
        f"('slow', '', 'high_latency', 8000.4, '[]', '[]', 50, NULL, 7, true, {old}), "
        f"('crawl', '', 'low_throughput', 2.5, '[\"a/*\"]', '[]', 30, 5, NULL, false, {old}), "
        f"('failed-stream', 'mine', 'failed_stream', NULL, '[]', '[]', 20, NULL, NULL, true, {old})"
    )
    entries = (
        "INSERT INTO ledger_entries (account_id, kind, purchased_nano, bonus_nano, "
        "request_id, key_id, grant_id, expires_at, note, created_at) VALUES "
        f"('a', 'trial', 0, 50, NULL, NULL, NULL, {old}, '', {old}), "
        f"('a', 'charge', 0, -20, 'r1', 'k', NULL, NULL, '', {old}), "
        f"('a', 'expiry', 0, -30, NULL, NULL, 1, NULL, '', {old})"
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0003")
            await conn.execute(
                text(
                    "INSERT INTO accounts (id, name, blocked, created_at) "
                    f"VALUES ('a', '', false, {old})"
                )
            )
            await conn.execute(text(rules))
            await conn.execute(text(entries))
            await conn.execute(text("INSERT INTO account_balances VALUES ('a', 0, 0)"))
    finally:
        await engine.dispose()
    store = await Store.open(blank_url)
    try:
        found = {r.id: r for r in await policies.list_insurance_rules(store)}
        assert set(found) == {
            "slow",
            "crawl",
            "failed-stream",
            "high-latency",
            "low-throughput",
            "unsatisfactory-content",
        }
        assert found["slow"].params == {"ttft_ms": 8000}
        assert found["slow"].cap_per_day_nano == 7
        assert found["crawl"].params == {"min_tokens_per_second": 2.5, "min_output_tokens": 50}
        assert (found["crawl"].models, found["crawl"].enabled) == (["a/*"], False)
        assert (found["failed-stream"].description, found["failed-stream"].payout_percent) == (
            "mine",
            20,
        )
        assert found["high-latency"].params == {"ttft_ms": 5000, "p50_multiple": 3.0}
        assert found["high-latency"].payout_percent == 50
        assert found["high-latency"].cap_per_day_nano == 10 * 10**9
        assert found["low-throughput"].params == {
            "min_tokens_per_second": 10.0,
            "min_output_tokens": 200,
        }
        assert found["unsatisfactory-content"].params == {
            "repetition_ngram": 8,
            "repetition_max": 12,
        }
        assert all(r.accounts == [] and r.min_cost_nano == 0 for r in found.values())
        assert not (await accounts.get_account(store, "a")).retain_content

        kept = await ledger.list_entries(store, "a")
        assert [(e.id, e.kind, e.grant_id) for e in kept] == [
            (3, "expiry", 1),
            (2, "charge", None),
            (1, "trial", None),
        ]
        now = datetime(2030, 1, 2, tzinfo=UTC)
        async with store.transaction() as conn:
            for rule in ("slow", "crawl"):
                await conn.execute(
                    t.ledger_entries.insert().values(
                        account_id="a",
                        kind="insurance",
                        purchased_nano=0,
                        bonus_nano=1,
                        request_id="r1",
                        note=rule,
                        created_at=now,
                    )
                )
        with pytest.raises(IntegrityError):
            async with store.transaction() as conn:
                await conn.execute(
                    t.ledger_entries.insert().values(
                        account_id="a",
                        kind="charge",
                        purchased_nano=-1,
                        bonus_nano=0,
                        request_id="r1",
                        note="",
                        created_at=now,
                    )
                )
        async with store.read() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()


async def test_cases_sampled_before_0005_are_due_for_the_judge(blank_url: str) -> None:
    """Cases that were waiting for the judge when it did not exist yet are due at once; cases
    no rule sampled, and cases already judged, are never due."""
    engine = create_async_engine(async_url(blank_url))
    columns = (
        "INSERT INTO insurance_cases (request_id, account_id, created_at, model, surface, "
        "verdicts, measurements, request, answer, judge_rules, judged_at) VALUES "
    )
    rows = [
        "('sampled', 'a', '2030-01-01 00:00:00', 'm', 'chat', '[]', '{}', '{}', '{}', "
        "'[\"judge\"]', NULL)",
        "('claimed', 'a', '2030-01-01 00:00:00', 'm', 'chat', '[]', '{}', '{}', '{}', '[]', NULL)",
        "('judged', 'a', '2030-01-01 00:00:00', 'm', 'chat', '[]', '{}', '{}', '{}', "
        "'[\"judge\"]', '2030-01-01 00:05:00')",
    ]
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0004")
            await conn.execute(text(columns + ", ".join(rows)))
    finally:
        await engine.dispose()
    store = await Store.open(blank_url)
    try:
        due = await cases.due_cases(store, datetime(2030, 1, 2, tzinfo=UTC), limit=10)
        assert [(c.request_id, c.judge_attempts, c.judge_outcome) for c in due] == [
            ("sampled", 0, None)
        ]
        assert due[0].created_at == datetime(2030, 1, 1, tzinfo=UTC)
        async with store.read() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()


async def test_accounts_and_models_keep_their_rows_through_0007(blank_url: str) -> None:
    """Existing accounts get no default fallback and existing models the settings' attempts;
    both can be set afterwards."""
    engine = create_async_engine(async_url(blank_url))
    old = "'2030-01-01 00:00:00'"
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0006")
            await conn.execute(
                text(
                    "INSERT INTO accounts (id, name, blocked, retain_content, created_at) "
                    f"VALUES ('a', 'A', false, true, {old})"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO models (slug, context_length, capabilities, created_at) "
                    f"VALUES ('m/one', 1000, '[]', {old})"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO model_names (name, model_slug, is_alias, position) "
                    "VALUES ('m/one', 'm/one', false, 0), ('one', 'm/one', true, 1)"
                )
            )
    finally:
        await engine.dispose()
    store = await Store.open(blank_url)
    try:
        account = await accounts.get_account(store, "a")
        assert (account.name, account.retain_content, account.default_fallback) == (
            "A",
            True,
            None,
        )
        model = await catalog.get_model(store, "m/one")
        assert (model.aliases, model.context_length, model.max_attempts) == (["one"], 1000, None)
        await accounts.update_account(store, "a", default_fallback="one")
        await catalog.update_model(store, "m/one", max_attempts=2)
        assert (await accounts.get_account(store, "a")).default_fallback == "one"
        assert (await catalog.get_model(store, "m/one")).max_attempts == 2
        async with store.read() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()


async def test_rate_limit_policies_get_subjects_and_the_faq_defaults_through_0008(
    blank_url: str,
) -> None:
    """Existing policies limit every key or account as before (no subjects); the FAQ's
    per-family defaults join them, except where the operator already has a policy of that id,
    which is kept as it was."""
    engine = create_async_engine(async_url(blank_url))
    old = "'2030-01-01 00:00:00'"
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0007")
            await conn.execute(
                text(
                    "INSERT INTO rate_limit_policies (id, description, applies_to, models, rpm, "
                    "tpm, burst, enabled, created_at) VALUES "
                    f"('std', '', 'account', '[]', NULL, 5000, NULL, true, {old}), "
                    f"('claude-models', 'mine', 'key', '[\"anthropic/*\"]', 7, NULL, 3, false, "
                    f"{old})"
                )
            )
    finally:
        await engine.dispose()
    store = await Store.open(blank_url)
    try:
        found = {p.id: p for p in await policies.list_rate_limit_policies(store)}
        assert set(found) == {"std", "claude-models", "gpt-models", "image-models"}
        assert all(p.subjects == [] for p in found.values())
        std = found["std"]
        assert (std.applies_to, std.tpm, std.rpm) == ("account", 5000, None)
        mine = found["claude-models"]
        assert (mine.description, mine.models, mine.rpm, mine.burst, mine.enabled) == (
            "mine",
            ["anthropic/*"],
            7,
            3,
            False,
        )
        gpt = found["gpt-models"]
        assert (gpt.applies_to, gpt.rpm, gpt.burst, gpt.tpm, gpt.enabled) == (
            "key",
            60,
            60,
            None,
            True,
        )
        assert gpt.models == ["openai/gpt-3*", "openai/gpt-4*", "openai/gpt-5*", "openai/gpt-oss-*"]
        image = found["image-models"]
        assert (image.rpm, image.burst) == (20, 20)
        assert "openai/gpt-image-*" in image.models
        # The seeded policies are the operator's to change like any other.
        await policies.update_rate_limit_policy(store, "gpt-models", rpm=120, burst=None)
        assert (await policies.get_rate_limit_policy(store, "gpt-models")).rpm == 120
        async with store.read() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()


async def test_channels_at_the_default_timeouts_inherit_through_0010(blank_url: str) -> None:
    """A channel's timeout at the built-in default becomes NULL (its model's, which is the same
    default until the model sets its own); a custom one is kept. Going back, a NULL becomes
    what it stood for: the model's timeout, else the default."""
    engine = create_async_engine(async_url(blank_url))
    old = "'2030-01-01 00:00:00'"
    channels = (
        "INSERT INTO channels (id, model_slug, provider_id, upstream_model, weight, "
        "price_prompt_nano, price_completion_nano, price_cached_nano, first_byte_timeout_ms, "
        "idle_timeout_ms, total_timeout_ms, enabled, created_at) VALUES "
        f"('plain', 'm/one', 'p', 'x', 1, 0, 0, 0, 60000, 120000, 600000, true, {old}), "
        f"('custom', 'm/one', 'p', 'x', 1, 0, 0, 0, 5000, 120000, 900000, true, {old})"
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0009")
            await conn.execute(
                text(
                    "INSERT INTO providers (id, base_url, protocol, headers, connect_timeout_ms, "
                    f"created_at) VALUES ('p', 'https://p.test/v1', 'openai', '{{}}', 5000, {old})"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO models (slug, capabilities, created_at) "
                    f"VALUES ('m/one', '[]', {old})"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO model_names (name, model_slug, is_alias, position) "
                    "VALUES ('m/one', 'm/one', false, 0)"
                )
            )
            await conn.execute(text(channels))
    finally:
        await engine.dispose()

    def timeouts(c: catalog.ChannelRecord) -> tuple[int | None, ...]:
        return (c.first_byte_timeout_ms, c.idle_timeout_ms, c.total_timeout_ms)

    store = await Store.open(blank_url)
    try:
        assert timeouts(await catalog.get_channel(store, "plain")) == (None, None, None)
        assert timeouts(await catalog.get_channel(store, "custom")) == (5000, None, 900_000)
        model = await catalog.get_model(store, "m/one")
        assert (model.first_byte_timeout_ms, model.idle_timeout_ms, model.total_timeout_ms) == (
            None,
            None,
            None,
        )
        await catalog.update_model(store, "m/one", idle_timeout_ms=30_000)
        async with store.read() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()

    engine = create_async_engine(async_url(blank_url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0009"))
            rows = await conn.execute(
                text(
                    "SELECT id, first_byte_timeout_ms, idle_timeout_ms, total_timeout_ms "
                    "FROM channels ORDER BY id"
                )
            )
            assert [tuple(r) for r in rows] == [
                ("custom", 5000, 30_000, 900_000),
                ("plain", 60_000, 30_000, 600_000),
            ]
    finally:
        await engine.dispose()


async def test_provider_header_values_and_url_credentials_are_dropped_by_0011(
    blank_url: str,
) -> None:
    """Stored header values and `user:password@` in a base URL may be secrets kept in clear:
    the headers become `headers_env` (empty), the URL loses its credentials, and going back
    brings the headers column back empty."""
    engine = create_async_engine(async_url(blank_url))
    old = "'2030-01-01 00:00:00'"
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0010")
            await conn.execute(
                text(
                    "INSERT INTO providers (id, base_url, protocol, headers, connect_timeout_ms, "
                    "created_at) VALUES "
                    "('plain', 'https://p.test/v1/@scope', 'openai', '{}', 5000, "
                    f"{old}), ('secret', 'https://u:hunter2@p.test:8443/v1', 'openai', "
                    f'\'{{"X-Org": "org-secret"}}\', 5000, {old})'
                )
            )
    finally:
        await engine.dispose()

    store = await Store.open(blank_url)
    try:
        plain = await catalog.get_provider(store, "plain")
        secret = await catalog.get_provider(store, "secret")
        assert (plain.base_url, plain.headers_env) == ("https://p.test/v1/@scope", {})
        assert (secret.base_url, secret.headers_env) == ("https://p.test:8443/v1", {})
        async with store.read() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()

    engine = create_async_engine(async_url(blank_url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0010"))
            rows = await conn.execute(text("SELECT id, headers FROM providers ORDER BY id"))
            assert [(r[0], r[1] if isinstance(r[1], dict) else json.loads(r[1])) for r in rows] == [
                ("plain", {}),
                ("secret", {}),
            ]
    finally:
        await engine.dispose()


async def test_a_new_store_starts_with_the_faq_rate_limits(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        limits = {
            p.id: (p.applies_to, p.subjects, p.rpm, p.burst)
            for p in await policies.list_rate_limit_policies(store)
        }
        assert limits == {
            "claude-models": ("key", [], 100, 100),
            "gpt-models": ("key", [], 60, 60),
            "image-models": ("key", [], 20, 20),
        }
        assert (await policies.get_rate_limit_policy(store, "claude-models")).models == [
            "anthropic/claude-*"
        ]
    finally:
        await store.close()
