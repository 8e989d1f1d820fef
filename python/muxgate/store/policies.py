"""Insurance rules and rate-limit policies, kept as data; they are enforced elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, get_args

import msgspec
from sqlalchemy import Column, Table, exists, select

from muxgate.store import tables as t
from muxgate.store.errors import Conflict, Invalid
from muxgate.store.keys import check_model_patterns
from muxgate.store.ledger import now_utc
from muxgate.store.rows import conflict_on_integrity, delete, fetch, to_record, unset_free, update
from muxgate.store.store import Store

Trigger = Literal["high_latency", "low_throughput", "failed_stream", "unsatisfactory_content"]
TRIGGERS: tuple[str, ...] = get_args(Trigger)
AppliesTo = Literal["key", "account"]
# Triggers that compare a measurement with a threshold (TTFT ms, output tokens per second).
NEEDS_THRESHOLD = {"high_latency", "low_throughput"}


class InsuranceRuleRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    description: str
    trigger: Trigger
    threshold: float | None
    models: list[str]
    channels: list[str]
    payout_percent: int
    cap_per_request_nano: int | None
    cap_per_day_nano: int | None
    enabled: bool
    created_at: datetime


class RateLimitPolicyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    description: str
    applies_to: AppliesTo
    models: list[str]
    rpm: int | None
    tpm: int | None
    burst: int | None
    enabled: bool
    created_at: datetime


def _check_rule(values: dict[str, Any], current: dict[str, Any]) -> None:
    merged = {**current, **values}
    if merged["trigger"] not in TRIGGERS:
        raise Invalid(f"one of {', '.join(TRIGGERS)}", "trigger")
    if merged["trigger"] in NEEDS_THRESHOLD and (
        merged["threshold"] is None or merged["threshold"] <= 0
    ):
        raise Invalid(f"{merged['trigger']} needs a positive threshold", "threshold")
    if not 0 <= merged["payout_percent"] <= 100:
        raise Invalid("must be between 0 and 100", "payout_percent")
    for cap in ("cap_per_request_nano", "cap_per_day_nano"):
        if merged[cap] is not None and merged[cap] < 0:
            raise Invalid("must not be negative", cap)
    if "models" in values:
        values["models"] = check_model_patterns(values["models"])


def _check_policy(values: dict[str, Any], current: dict[str, Any]) -> None:
    merged = {**current, **values}
    if merged["applies_to"] not in ("key", "account"):
        raise Invalid("one of key, account", "applies_to")
    for name in ("rpm", "tpm", "burst"):
        if merged[name] is not None and merged[name] < 1:
            raise Invalid("must be at least 1", name)
    if merged["rpm"] is None and merged["tpm"] is None:
        raise Invalid("a policy limits rpm, tpm or both", "rpm")
    if "models" in values:
        values["models"] = check_model_patterns(values["models"])


class _Kind(msgspec.Struct, frozen=True):
    table: Table
    record: type[Any]
    what: str
    check: Any

    @property
    def key(self) -> Column[Any]:
        return self.table.c.id


RULES = _Kind(t.insurance_rules, InsuranceRuleRecord, "insurance rule", _check_rule)
POLICIES = _Kind(t.rate_limit_policies, RateLimitPolicyRecord, "rate-limit policy", _check_policy)


async def _create(store: Store, kind: _Kind, ident: str, values: dict[str, Any]) -> Any:
    kind.check(values, {})
    message = f"{kind.what} {ident!r} already exists"
    async with store.transaction() as conn:
        if (await conn.execute(select(exists().where(kind.key == ident)))).scalar():
            raise Conflict(message, "id")
        async with conflict_on_integrity(message, "id"):
            await conn.execute(kind.table.insert().values(id=ident, created_at=now_utc(), **values))
        return to_record(await fetch(conn, kind.table, kind.key, ident, kind.what), kind.record)


async def _update(store: Store, kind: _Kind, ident: str, changes: dict[str, Any]) -> Any:
    values = unset_free(changes)
    async with store.transaction() as conn:
        current = await fetch(conn, kind.table, kind.key, ident, kind.what)
        kind.check(values, dict(current._mapping))
        return to_record(
            await update(conn, kind.table, kind.key, ident, kind.what, values=values), kind.record
        )


async def _get(store: Store, kind: _Kind, ident: str) -> Any:
    async with store.read() as conn:
        return to_record(await fetch(conn, kind.table, kind.key, ident, kind.what), kind.record)


async def _list(store: Store, kind: _Kind) -> list[Any]:
    async with store.read() as conn:
        rows = await conn.execute(kind.table.select().order_by(kind.key))
        return [to_record(r, kind.record) for r in rows]


async def _delete(store: Store, kind: _Kind, ident: str) -> None:
    async with store.transaction() as conn:
        await delete(conn, kind.table, kind.key, ident, kind.what)


async def create_insurance_rule(
    store: Store,
    rule_id: str,
    *,
    trigger: Trigger,
    description: str = "",
    threshold: float | None = None,
    models: Sequence[str] = (),
    channels: Sequence[str] = (),
    payout_percent: int = 100,
    cap_per_request_nano: int | None = None,
    cap_per_day_nano: int | None = None,
    enabled: bool = True,
) -> InsuranceRuleRecord:
    values = {
        "description": description,
        "trigger": trigger,
        "threshold": threshold,
        "models": list(models),
        "channels": list(channels),
        "payout_percent": payout_percent,
        "cap_per_request_nano": cap_per_request_nano,
        "cap_per_day_nano": cap_per_day_nano,
        "enabled": enabled,
    }
    record: InsuranceRuleRecord = await _create(store, RULES, rule_id, values)
    return record


async def update_insurance_rule(store: Store, rule_id: str, **changes: Any) -> InsuranceRuleRecord:
    record: InsuranceRuleRecord = await _update(store, RULES, rule_id, changes)
    return record


async def get_insurance_rule(store: Store, rule_id: str) -> InsuranceRuleRecord:
    record: InsuranceRuleRecord = await _get(store, RULES, rule_id)
    return record


async def list_insurance_rules(store: Store) -> list[InsuranceRuleRecord]:
    return await _list(store, RULES)


async def delete_insurance_rule(store: Store, rule_id: str) -> None:
    await _delete(store, RULES, rule_id)


async def create_rate_limit_policy(
    store: Store,
    policy_id: str,
    *,
    applies_to: AppliesTo,
    description: str = "",
    models: Sequence[str] = (),
    rpm: int | None = None,
    tpm: int | None = None,
    burst: int | None = None,
    enabled: bool = True,
) -> RateLimitPolicyRecord:
    values = {
        "description": description,
        "applies_to": applies_to,
        "models": list(models),
        "rpm": rpm,
        "tpm": tpm,
        "burst": burst,
        "enabled": enabled,
    }
    record: RateLimitPolicyRecord = await _create(store, POLICIES, policy_id, values)
    return record


async def update_rate_limit_policy(
    store: Store, policy_id: str, **changes: Any
) -> RateLimitPolicyRecord:
    record: RateLimitPolicyRecord = await _update(store, POLICIES, policy_id, changes)
    return record


async def get_rate_limit_policy(store: Store, policy_id: str) -> RateLimitPolicyRecord:
    record: RateLimitPolicyRecord = await _get(store, POLICIES, policy_id)
    return record


async def list_rate_limit_policies(store: Store) -> list[RateLimitPolicyRecord]:
    return await _list(store, POLICIES)


async def delete_rate_limit_policy(store: Store, policy_id: str) -> None:
    await _delete(store, POLICIES, policy_id)
