"""Booking insurance verdicts with the usage they arrive in (and later, from the judge): credit
in the bonus bucket, the per-account daily cap, idempotency per (request, rule) under every
kind of replay, redacted cases for accounts that retain content, and the TTFT medians."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select

from muxgate.store import Store, accounts, cases, claims, ledger, policies, settings, usage
from muxgate.store import tables as t
from muxgate.wire import Answer, Case, ToolCall, UsageEvent, Verdict
from store.conftest import T0, EventFactory

USD = 1_000_000_000


@pytest.fixture(autouse=True)
async def _no_trial(store: Store) -> None:
    await settings.update_settings(store, trial_credit_nano=0)


async def funded(store: Store, account: str, purchased: int = 10 * USD) -> None:
    await accounts.create_account(store, account)
    await ledger.add_entry(store, account, "top_up", purchased)


def verdict(rule: str, credit: int, trigger: str = "failed_stream") -> Verdict:
    return Verdict(rule_id=rule, trigger=trigger, reason=f"{rule} triggered", credit_nano=credit)


def claimed(event: UsageEvent, *verdicts: Verdict, case: Case | None = None) -> UsageEvent:
    return msgspec.structs.replace(event, insurance=list(verdicts), case=case)


async def insurance_entries(store: Store, account: str) -> list[ledger.LedgerEntry]:
    return [e for e in await ledger.list_entries(store, account) if e.kind == "insurance"]


async def claim_rows(store: Store) -> list[dict[str, Any]]:
    c = t.insurance_claims
    async with store.read() as conn:
        rows = await conn.execute(select(c).order_by(c.c.id))
        return [dict(r._mapping) for r in rows]


async def test_a_verdict_is_credited_to_the_bonus_bucket_and_spent_first(
    store: Store, event: EventFactory
) -> None:
    await funded(store, "acme")
    sent = claimed(
        event("r1", "acme", 1_000, key="k9"),
        verdict("failed-stream", 1_000),
        verdict("high-latency", 0, "high_latency"),
    )
    result = await usage.record_usage(store, [sent], now=T0 + timedelta(seconds=5))
    assert (result.charged_nano, result.credited_nano, result.claims) == (1_000, 1_000, 2)
    balance = await ledger.balance(store, "acme")
    assert (balance.purchased_nano, balance.bonus_nano) == (10 * USD - 1_000, 1_000)

    [entry] = await insurance_entries(store, "acme")
    assert (entry.bonus_nano, entry.purchased_nano) == (1_000, 0)
    assert (entry.request_id, entry.key_id, entry.note) == ("r1", "k9", "failed-stream")
    assert entry.expires_at is None  # insurance credit does not expire
    rows = await claim_rows(store)
    assert [(r["rule_id"], r["trigger"], r["requested_nano"], r["credit_nano"]) for r in rows] == [
        ("failed-stream", "failed_stream", 1_000, 1_000),
        ("high-latency", "high_latency", 0, 0),
    ]
    assert rows[0]["reason"] == "failed-stream triggered"
    assert rows[0]["created_at"] == T0  # the request's time, not the booking's
    assert rows[0]["booked_at"] == T0 + timedelta(seconds=5)
    assert (rows[0]["key_id"], rows[0]["model"], rows[0]["channel_id"]) == (
        "k9",
        "openai/gpt-4o-mini",
        "direct",
    )

    # The next charge takes the insurance credit (bonus) before purchased credit.
    await usage.record_usage(store, [event("r2", "acme", 1_500)])
    balance = await ledger.balance(store, "acme")
    assert (balance.purchased_nano, balance.bonus_nano) == (10 * USD - 1_500, 0)
    # Nothing of it ever expires.
    assert (await ledger.expire_bonus(store, T0 + timedelta(days=3650))).entries == 0


async def test_replays_book_nothing_twice(store: Store, event: EventFactory) -> None:
    await funded(store, "acme")
    batch = [claimed(event(f"r{i}", "acme", 100), verdict("failed-stream", 100)) for i in range(3)]
    first = await usage.record_usage(store, [*batch, batch[0]])  # in-batch duplicate
    assert (first.claims, first.credited_nano) == (3, 300)
    again = await usage.record_usage(store, batch)  # the same events in a later batch
    assert (again.inserted, again.claims, again.credited_nano) == (0, 0, 0)
    # Usage records purged, then the events replayed: the records come back, nothing else.
    assert await usage.purge_usage(store, older_than=T0 + timedelta(days=1)) == 3
    replayed = await usage.record_usage(store, batch)
    assert (replayed.inserted, replayed.charged_nano, replayed.claims) == (3, 0, 0)
    assert len(await insurance_entries(store, "acme")) == 3
    assert len(await claim_rows(store)) == 3
    assert (await ledger.balance(store, "acme")).total_nano == 10 * USD


async def test_the_daily_cap_counts_per_account_rule_and_utc_day(
    store: Store, event: EventFactory
) -> None:
    await funded(store, "acme")
    await funded(store, "other")
    await policies.create_insurance_rule(
        store, "capped", trigger="failed_stream", cap_per_day_nano=250
    )
    late = T0 + timedelta(hours=23, minutes=59)
    day_two = T0 + timedelta(days=1, minutes=1)

    def request(rid: str, account: str, created: datetime) -> UsageEvent:
        return claimed(event(rid, account, 100, created=created), verdict("capped", 100))

    # Two batches of one day: 100 + 100 + 50 (capped) + 0 (capped, still recorded).
    await usage.record_usage(store, [request("a1", "acme", T0), request("a2", "acme", T0)])
    result = await usage.record_usage(
        store,
        [request("a3", "acme", late), request("a4", "acme", late), request("o1", "other", T0)],
    )
    assert result.credited_nano == 150
    # The next UTC day starts afresh.
    await usage.record_usage(store, [request("a5", "acme", day_two)])
    credits = {
        r["request_id"]: (r["requested_nano"], r["credit_nano"]) for r in await claim_rows(store)
    }
    assert credits == {
        "a1": (100, 100),
        "a2": (100, 100),
        "a3": (100, 50),
        "a4": (100, 0),
        "o1": (100, 100),
        "a5": (100, 100),
    }
    # A claim capped to nothing has no ledger entry.
    assert sorted(e.request_id or "" for e in await insurance_entries(store, "acme")) == [
        "a1",
        "a2",
        "a3",
        "a5",
    ]
    # A rule deleted while its verdicts were in flight: booked without a daily cap.
    await policies.delete_insurance_rule(store, "capped")
    gone = await usage.record_usage(store, [request("a6", "acme", T0)])
    assert gone.credited_nano == 100


async def test_unknown_accounts_get_no_claims(store: Store, event: EventFactory) -> None:
    result = await usage.record_usage(
        store, [claimed(event("r1", "ghost", 100), verdict("failed-stream", 100))]
    )
    assert (result.inserted, result.claims, result.unknown_accounts) == (1, 0, ["ghost"])
    assert await claim_rows(store) == []


async def test_late_verdicts_are_booked_once_and_may_unblock(
    store: Store, event: EventFactory
) -> None:
    """The judge's verdicts arrive after the request was metered (and charged)."""
    await funded(store, "acme", purchased=500)
    charged = await usage.record_usage(store, [event("r1", "acme", 800)])
    assert charged.blocked_accounts == ["acme"]
    assert (await accounts.get_account(store, "acme")).effectively_blocked
    await policies.create_insurance_rule(
        store,
        "judge",
        trigger="hallucination",
        params={"sample_rate": 1, "judge_model": "a/judge"},
        cap_per_day_nano=700,
    )
    source = claims.ClaimSource(
        request_id="r1",
        account_id="acme",
        key_id="k1",
        model="openai/gpt-4o-mini",
        channel_id="direct",
        created_at=T0,
        verdicts=[verdict("judge", 800, "hallucination")],
    )
    ghost = msgspec.structs.replace(source, request_id="r2", account_id="ghost")
    booked = await claims.book_claims(store, [source, ghost], now=T0 + timedelta(minutes=3))
    assert (booked.claims, booked.credited_nano) == (1, 700)
    assert booked.unblocked_accounts == ["acme"]
    assert booked.unknown_accounts == ["ghost"]
    assert not (await accounts.get_account(store, "acme")).effectively_blocked
    again = await claims.book_claims(store, [source])
    assert (again.claims, again.credited_nano, again.unblocked_accounts) == (0, 0, [])
    assert (await ledger.balance(store, "acme")).total_nano == 400


def case(**changes: Any) -> Case:
    request = {
        "model": "openai/gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Use key sk-proj-abcdefghijklmnopqrstuvwx"},
            {"role": "user", "content": "Mail jane.doe@example.com or call +44 20 7946 0958"},
        ],
        "max_tokens": 200,
    }
    values: dict[str, Any] = {
        "surface": "chat",
        "request": msgspec.Raw(msgspec.json.encode(request)),
        "answer": Answer(
            text="Your card 4111 1111 1111 1111 was seen from 203.0.113.7 in 2024",
            tool_calls=[ToolCall(name="notify", arguments='{"to": "ops@example.org"}')],
        ),
    }
    values.update(changes)
    return Case(**values)


async def stored_cases(store: Store, account: str) -> list[cases.CaseRecord]:
    return [c async for c in cases.iter_cases(store, account)]


async def test_cases_are_kept_redacted_for_retaining_accounts_only(
    store: Store, event: EventFactory
) -> None:
    await funded(store, "keeps")
    await accounts.update_account(store, "keeps", retain_content=True)
    await funded(store, "private")  # the gateway may have sampled it before it opted out
    result = await usage.record_usage(
        store,
        [
            claimed(event("k1", "keeps", 300), verdict("failed-stream", 300), case=case()),
            claimed(
                # A free request sampled for the judge: a case, nothing to charge or credit.
                event("k2", "keeps", 0, created=T0 + timedelta(seconds=1)),
                case=case(judge_rules=["judge"], surface="messages"),
            ),
            claimed(event("p1", "private", 300), verdict("failed-stream", 300), case=case()),
        ],
    )
    assert result.cases == 2
    assert await stored_cases(store, "private") == []
    first, second = await stored_cases(store, "keeps")
    assert (first.request_id, second.request_id) == ("k1", "k2")
    messages = first.request["messages"]
    assert messages[0]["content"] == "Use key [SECRET]"
    assert messages[1]["content"] == "Mail [EMAIL] or call [PHONE]"
    assert first.request["max_tokens"] == 200
    assert first.answer["text"] == "Your card [CARD] was seen from [IP] in 2024"
    assert first.answer["tool_calls"] == [{"name": "notify", "arguments": '{"to": "[EMAIL]"}'}]
    assert first.verdicts == [
        {
            "rule_id": "failed-stream",
            "trigger": "failed_stream",
            "reason": "failed-stream triggered",
            "requested_nano": 300,
            "credit_nano": 300,
        }
    ]
    assert first.measurements["cost_nano_usd"] == 300
    assert first.measurements["finish_reason"] == "stop"
    assert (second.surface, second.judge_rules, second.verdicts) == ("messages", ["judge"], [])
    assert second.judged_at is None

    # The judge rules later: the case records it.
    judged = T0 + timedelta(minutes=2)
    source = claims.ClaimSource(
        request_id="k2",
        account_id="keeps",
        key_id="k1",
        model="openai/gpt-4o-mini",
        channel_id="direct",
        created_at=T0,
        verdicts=[verdict("judge", 100, "hallucination")],
    )
    await claims.book_claims(store, [source], now=judged)
    _, second = await stored_cases(store, "keeps")
    assert second.judged_at == judged
    assert [v["credit_nano"] for v in second.verdicts] == [100]

    # Cases go with usage retention.
    await usage.purge_usage(store, older_than=T0 + timedelta(milliseconds=500))
    assert [c.request_id for c in await stored_cases(store, "keeps")] == ["k2"]


async def test_ttft_medians_need_twenty_recent_streamed_successes(
    store: Store, event: EventFactory
) -> None:
    now = T0 + timedelta(hours=1)

    def timed(rid: str, model: str, ttft: float, **changes: Any) -> UsageEvent:
        values = {"model": model, "ttft_ms": ttft, **changes}
        return msgspec.structs.replace(
            event(rid, "acme", 0, created=T0 + timedelta(minutes=30)), **values
        )

    batch = [timed(f"a{i}", "a/fast", 100.0 + i) for i in range(21)]  # median 110
    batch += [timed(f"b{i}", "b/few", 500.0) for i in range(19)]
    # Not counted: failed, not streamed, no TTFT, older than an hour.
    batch += [timed(f"x{i}", "a/fast", 9_999.0, status="failed") for i in range(30)]
    batch += [timed(f"y{i}", "a/fast", 9_999.0, stream=False) for i in range(30)]
    batch += [timed(f"n{i}", "b/few", 0.0, ttft_ms=None) for i in range(5)]
    batch += [
        msgspec.structs.replace(
            timed(f"o{i}", "b/few", 500.0), created_ms=int(T0.timestamp() * 1000) - 1
        )
        for i in range(5)
    ]
    await usage.record_usage(store, batch)
    async with store.read() as conn:
        assert await usage.ttft_medians(conn, now) == {"a/fast": 110.0}
    async with store.read() as conn:
        count = select(func.count()).select_from(t.usage_records)
        assert (await conn.execute(count)).scalar_one() == len(batch)
