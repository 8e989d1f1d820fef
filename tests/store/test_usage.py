"""record_usage: one transaction per batch, idempotent on request id, charging bonus first,
reporting accounts that reach zero and keys that reach their credit limit; and purge."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from muxgate.store import Store, accounts, keys, ledger, settings, usage
from muxgate.store import tables as t
from muxgate.wire import UsageEvent

EventFactory = Callable[..., UsageEvent]
USD = 1_000_000_000


async def count(store: Store, table: t.Table) -> int:
    async with store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def funded(store: Store, account: str, purchased: int, bonus: int = 0) -> None:
    await accounts.create_account(store, account)
    if purchased:
        await ledger.add_entry(store, account, "top_up", purchased)
    if bonus:
        await ledger.add_entry(store, account, "adjustment", bonus, bucket="bonus")


@pytest.fixture(autouse=True)
async def _no_trial(store: Store) -> None:
    await settings.update_settings(store, trial_credit_nano=0)


async def test_replaying_events_inserts_and_charges_nothing_twice(
    store: Store, event: EventFactory
) -> None:
    await funded(store, "acme", 10 * USD)
    batch = [event(f"r{i}", "acme", 1_000) for i in range(5)]
    first = await usage.record_usage(store, batch)
    assert (first.inserted, first.duplicates, first.charged_nano) == (5, 0, 5_000)
    # The whole batch again, plus one new event and an in-batch duplicate of it.
    again = await usage.record_usage(
        store, [*batch, event("r5", "acme", 7), event("r5", "acme", 7)]
    )
    assert (again.inserted, again.duplicates, again.charged_nano) == (1, 6, 7)
    assert await count(store, t.usage_records) == 6
    charges = [e for e in await ledger.list_entries(store, "acme") if e.kind == "charge"]
    assert sorted(e.request_id or "" for e in charges) == [f"r{i}" for i in range(6)]
    assert (await ledger.balance(store, "acme")).total_nano == 10 * USD - 5_007


async def test_record_keeps_the_event_metadata(store: Store, event: EventFactory) -> None:
    await funded(store, "acme", USD)
    sent = event("r1", "acme", 123)
    await usage.record_usage(store, [sent])
    async with store.read() as conn:
        row = (await conn.execute(select(t.usage_records))).one()._mapping
    # Verdicts and cases live in their own tables (see test_insurance).
    kept = set(UsageEvent.__struct_fields__) - {"created_ms", "insurance", "case"}
    stored = {k: row[k] for k in kept}
    # The channels failed over from are one JSON text column.
    stored["failovers"] = msgspec.json.decode(stored["failovers"])
    expected = msgspec.structs.asdict(sent)
    created_ms = expected.pop("created_ms")
    assert (expected.pop("insurance"), expected.pop("case")) == ([], None)
    assert stored == expected
    assert row["created_at"] == datetime.fromtimestamp(created_ms / 1000, UTC)


async def test_free_requests_are_recorded_without_charges(
    store: Store, event: EventFactory
) -> None:
    await funded(store, "acme", USD)
    result = await usage.record_usage(store, [event("r1", "acme", 0)])
    assert result.inserted == 1
    assert result.charged_nano == 0
    assert [e.kind for e in await ledger.list_entries(store, "acme")] == ["top_up"]


async def test_unknown_accounts_are_recorded_not_charged(store: Store, event: EventFactory) -> None:
    await funded(store, "acme", USD)
    result = await usage.record_usage(store, [event("r1", "ghost", 10), event("r2", "acme", 10)])
    assert result.inserted == 2
    assert result.unknown_accounts == ["ghost"]
    assert result.charged_nano == 10


async def test_blocking_signals(store: Store, event: EventFactory) -> None:
    await funded(store, "low", 100, bonus=50)
    await funded(store, "rich", 100 * USD)
    await funded(store, "broke", 0)
    result = await usage.record_usage(
        store,
        [
            event("a", "low", 100),
            event("b", "rich", 100),
            event("c", "low", 40),
            event("d", "broke", 5),
        ],
    )
    # `low` went from 150 to 10 within the batch: not yet; `broke` was already at zero.
    assert result.blocked_accounts == []
    result = await usage.record_usage(store, [event("e", "low", 10), event("f", "rich", 1)])
    assert result.blocked_accounts == ["low"]
    assert await ledger.balance(store, "low") == ledger.Balance(purchased_nano=0, bonus_nano=0)
    # Crossing is reported once; further charges on a blocked account are not news.
    result = await usage.record_usage(store, [event("g", "low", 10)])
    assert result.blocked_accounts == []
    assert (await ledger.balance(store, "low")).purchased_nano == -10


async def test_keys_reaching_their_credit_limit(store: Store, event: EventFactory) -> None:
    await funded(store, "acme", 100 * USD)
    capped, _ = await keys.create_key(store, account_id="acme", credit_limit_nano=1_000)
    free, _ = await keys.create_key(store, account_id="acme")
    result = await usage.record_usage(
        store, [event("r1", "acme", 600, key=capped.id), event("r2", "acme", 5_000, key=free.id)]
    )
    assert result.exhausted_keys == []
    result = await usage.record_usage(store, [event("r3", "acme", 400, key=capped.id)])
    assert result.exhausted_keys == [capped.id]
    record = await keys.get_key(store, capped.id)
    assert record.spent_nano == 1_000
    assert not record.usable(datetime.now(UTC))
    assert (await keys.get_key(store, free.id)).spent_nano == 5_000
    result = await usage.record_usage(store, [event("r4", "acme", 1, key=capped.id)])
    assert result.exhausted_keys == []


async def test_a_batch_is_a_few_statements(store: Store, event: EventFactory) -> None:
    """Hundreds of events cost a handful of round trips, not one per row."""
    names = [f"acct{i}" for i in range(20)]
    for name in names:
        await funded(store, name, USD)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    sa_event.listen(store.engine.sync_engine, "before_cursor_execute", seen)
    try:
        batch = [event(f"r{i}", names[i % 20], 1_000 + i) for i in range(500)]
        result = await usage.record_usage(store, batch)
    finally:
        sa_event.remove(store.engine.sync_engine, "before_cursor_execute", seen)
    assert result.inserted == 500
    assert result.charged_nano == sum(1_000 + i for i in range(500))
    assert len(statements) <= 20, statements
    assert await count(store, t.ledger_entries) == 20 + 500


async def test_purge_deletes_old_records_only(store: Store, event: EventFactory) -> None:
    await funded(store, "acme", USD)
    now = datetime.now(UTC)
    old = event("old", "acme", 1, created=now - timedelta(days=100))
    recent = event("recent", "acme", 1, created=now - timedelta(days=10))
    await usage.record_usage(store, [old, recent])
    assert await usage.purge_usage(store) == 1  # default retention: 90 days
    assert await usage.usage_count(store) == 1
    await settings.update_settings(store, usage_retention_days=5)
    assert await usage.purge_usage(store) == 1
    assert await usage.purge_usage(store, now + timedelta(days=1)) == 0
    # Charges stay: the ledger is append-only.
    assert await count(store, t.ledger_entries) == 3
