"""Ledger arithmetic: bonus spent first, purchased may go negative, bonus grants expire for
their unspent part (earliest-expiring consumed first), and every write is idempotent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from muxgate.store import Invalid, NotFound, Store, accounts, keys, ledger, settings, usage
from muxgate.wire import UsageEvent

EventFactory = Callable[..., UsageEvent]

T0 = datetime(2030, 1, 1, tzinfo=UTC)
USD = 1_000_000_000


async def no_trial(store: Store) -> None:
    await settings.update_settings(store, trial_credit_nano=0)


def test_split_charge() -> None:
    assert ledger.split_charge(10, 25) == (0, -10)
    assert ledger.split_charge(30, 25) == (-5, -25)
    assert ledger.split_charge(30, 0) == (-30, 0)
    assert ledger.split_charge(30, -3) == (-30, 0)


async def test_new_account_gets_the_configured_trial(store: Store) -> None:
    record = await accounts.create_account(store, "acme", now=T0)
    assert record.balance == ledger.Balance(purchased_nano=0, bonus_nano=5 * USD)
    [trial] = await ledger.list_entries(store, "acme")
    assert trial.kind == "trial"
    assert trial.expires_at == T0 + timedelta(days=30)

    await settings.update_settings(store, trial_credit_nano=2 * USD, trial_days=7)
    other = await accounts.create_account(store, "beta", now=T0)
    assert other.balance.bonus_nano == 2 * USD
    [grant] = await ledger.list_entries(store, "beta")
    assert grant.expires_at == T0 + timedelta(days=7)

    await no_trial(store)
    bare = await accounts.create_account(store, "gamma")
    assert bare.balance.total_nano == 0
    assert bare.effectively_blocked
    assert await ledger.list_entries(store, "gamma") == []


async def test_bonus_is_spent_first_and_purchased_may_go_negative(
    store: Store, event: EventFactory
) -> None:
    await no_trial(store)
    await accounts.create_account(store, "acme")
    await ledger.add_entry(store, "acme", "top_up", 1 * USD)
    await ledger.add_entry(store, "acme", "adjustment", 300, bucket="bonus")
    await usage.record_usage(store, [event("r1", "acme", 200)])
    assert await ledger.balance(store, "acme") == ledger.Balance(purchased_nano=USD, bonus_nano=100)
    await usage.record_usage(store, [event("r2", "acme", 250)])
    assert await ledger.balance(store, "acme") == ledger.Balance(
        purchased_nano=USD - 150, bonus_nano=0
    )
    result = await usage.record_usage(store, [event("r3", "acme", 2 * USD)])
    assert await ledger.balance(store, "acme") == ledger.Balance(
        purchased_nano=-USD - 150, bonus_nano=0
    )
    assert result.blocked_accounts == ["acme"]
    charges = [e for e in await ledger.list_entries(store, "acme") if e.kind == "charge"]
    assert [(e.request_id, e.purchased_nano, e.bonus_nano) for e in charges] == [
        ("r3", -2 * USD, 0),
        ("r2", -150, -100),
        ("r1", 0, -200),
    ]


async def test_manual_entries_are_validated(store: Store) -> None:
    await no_trial(store)
    await accounts.create_account(store, "acme")
    with pytest.raises(NotFound):
        await ledger.add_entry(store, "ghost", "top_up", USD)
    cases: list[tuple[ledger.LedgerKind, int, dict[str, object], str]] = [
        ("charge", USD, {}, "kind"),
        ("expiry", -USD, {}, "kind"),
        ("top_up", 0, {}, "amount"),
        ("top_up", -5, {}, "amount"),
        ("refund", -5, {}, "amount"),
        ("adjustment", 0, {}, "amount"),
        ("top_up", USD, {"bucket": "bonus"}, "bucket"),
        ("adjustment", -1, {"bucket": "bonus"}, "amount"),
        ("top_up", USD, {"expires_at": T0}, "expires_at"),
        ("adjustment", USD, {"bucket": "bonus", "expires_at": T0}, "expires_at"),
    ]
    for kind, amount, extra, field in cases:
        with pytest.raises(Invalid) as info:
            await ledger.add_entry(store, "acme", kind, amount, now=T0, **extra)  # type: ignore[arg-type]
        assert info.value.field == field, (kind, amount, extra)
    assert await ledger.list_entries(store, "acme") == []


async def grant(store: Store, amount: int, days: int | None, account: str = "acme") -> int:
    expires = None if days is None else T0 + timedelta(days=days)
    entry = await ledger.add_entry(
        store, account, "adjustment", amount, bucket="bonus", expires_at=expires, now=T0
    )
    return entry.id


async def expiries(store: Store, account: str = "acme") -> dict[int | None, int]:
    entries = await ledger.list_entries(store, account)
    return {e.grant_id: e.bonus_nano for e in entries if e.kind == "expiry"}


async def test_expiry_takes_the_unspent_part_earliest_expiring_first(
    store: Store, event: EventFactory
) -> None:
    await no_trial(store)
    await accounts.create_account(store, "acme")
    g10 = await grant(store, 100, days=10)
    g20 = await grant(store, 200, days=20)
    g30 = await grant(store, 300, days=30)
    forever = await grant(store, 50, days=None)
    # 250 spent: all of g10 (100) and 150 of g20, the earliest-expiring grants.
    await usage.record_usage(store, [event("r1", "acme", 250)])
    assert (await ledger.balance(store, "acme")).bonus_nano == 400

    assert (await ledger.expire_bonus(store, T0 + timedelta(days=5))).entries == 0
    first = await ledger.expire_bonus(store, T0 + timedelta(days=10))
    assert first.entries == 1
    assert first.expired_nano == 0
    assert await expiries(store) == {g10: 0}

    second = await ledger.expire_bonus(store, T0 + timedelta(days=25))
    assert await expiries(store) == {g10: 0, g20: -50}
    assert second.expired_nano == 50
    assert (await ledger.balance(store, "acme")).bonus_nano == 350

    # Idempotent: nothing new is due.
    again = await ledger.expire_bonus(store, T0 + timedelta(days=25))
    assert again.entries == 0
    await ledger.expire_bonus(store, T0 + timedelta(days=400))
    assert await expiries(store) == {g10: 0, g20: -50, g30: -300}
    # The grant without expiry keeps its 50.
    assert (await ledger.balance(store, "acme")).bonus_nano == 50
    assert forever not in await expiries(store)


async def test_expiring_several_grants_at_once_and_blocking(
    store: Store, event: EventFactory
) -> None:
    await no_trial(store)
    await accounts.create_account(store, "acme")
    g1 = await grant(store, 100, days=1)
    g2 = await grant(store, 100, days=2)
    g3 = await grant(store, 100, days=3)
    await usage.record_usage(store, [event("r1", "acme", 150)])
    result = await ledger.expire_bonus(store, T0 + timedelta(days=3))
    # 150 spent from g1 (100) and g2 (50): g2 leaves 50, g3 is whole.
    assert await expiries(store) == {g1: 0, g2: -50, g3: -100}
    assert result.expired_nano == 150
    assert result.blocked_accounts == ["acme"]
    assert (await accounts.get_account(store, "acme")).effectively_blocked


async def test_top_up_unblocks(store: Store) -> None:
    await no_trial(store)
    await accounts.create_account(store, "acme")
    assert (await accounts.get_account(store, "acme")).effectively_blocked
    await ledger.add_entry(store, "acme", "top_up", 1)
    record = await accounts.get_account(store, "acme")
    assert not record.effectively_blocked
    await accounts.update_account(store, "acme", blocked=True)
    assert (await accounts.get_account(store, "acme")).effectively_blocked


async def test_listing_pages_newest_first(store: Store) -> None:
    await no_trial(store)
    await accounts.create_account(store, "acme")
    ids = [(await ledger.add_entry(store, "acme", "top_up", n)).id for n in range(1, 6)]
    page = await ledger.list_entries(store, "acme", limit=2)
    assert [e.id for e in page] == ids[:-3:-1]
    rest = await ledger.list_entries(store, "acme", before_id=page[-1].id)
    assert [e.id for e in rest] == ids[-3::-1]


async def test_running_sums_equal_the_ledger_they_sum(store: Store, event: EventFactory) -> None:
    """Balances and key spend are read from running sums; every way of writing the ledger
    (trial, operator entries, charges, replays, expiry) must keep them equal to the entries."""
    await accounts.create_account(store, "acme", now=T0)
    await accounts.create_account(store, "beta", now=T0)
    await grant(store, 70, days=3)
    await ledger.add_entry(store, "acme", "top_up", 5 * USD, now=T0)
    await ledger.add_entry(store, "beta", "adjustment", -USD, now=T0)
    batch = [
        event(f"r{i}", "acme" if i % 3 else "beta", 1000 + i, key=f"k{i % 2}") for i in range(30)
    ]
    await usage.record_usage(store, batch)
    await usage.record_usage(store, batch[:10])  # a replay charges nothing twice
    await usage.purge_usage(store, older_than=T0 + timedelta(days=1))
    await usage.record_usage(store, batch[:5])  # nor after the records were purged
    await ledger.expire_bonus(store, T0 + timedelta(days=400))

    entries = [e for a in ("acme", "beta") for e in await ledger.list_entries(store, a, limit=1000)]
    for account in ("acme", "beta"):
        mine = [e for e in entries if e.account_id == account]
        expected = ledger.Balance(
            purchased_nano=sum(e.purchased_nano for e in mine),
            bonus_nano=sum(e.bonus_nano for e in mine),
        )
        assert await ledger.balance(store, account) == expected
    async with store.read() as conn:
        spend = await keys.spent(conn, None)
    for key in ("k0", "k1"):
        charged = [e for e in entries if e.kind == "charge" and e.key_id == key]
        assert spend[key] == -sum(e.purchased_nano + e.bonus_nano for e in charged) > 0
