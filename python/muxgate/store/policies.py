"""Insurance rules and rate-limit policies, kept as data and compiled into the routing
snapshot (see `control.routing.compile`): the engine evaluates the rules and enforces the
limits."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, get_args

import msgspec
from sqlalchemy import Column, Table, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from muxgate.store import tables as t
from muxgate.store.errors import Conflict, Invalid
from muxgate.store.keys import check_model_patterns
from muxgate.store.ledger import now_utc
from muxgate.store.money import MAX_NANO
from muxgate.store.rows import conflict_on_integrity, delete, fetch, to_record, unset_free, update
from muxgate.store.store import Store

Trigger = Literal[
    "high_latency", "low_throughput", "failed_stream", "unsatisfactory_content", "hallucination"
]
TRIGGERS: tuple[str, ...] = get_args(Trigger)
AppliesTo = Literal["key", "account"]
KEY_LIMIT_PREFIX = "key:"
"""Snapshot ids of the limits a key sets itself (`rpm_limit`, `tpm_limit`): no policy's."""


class Param(msgspec.Struct, frozen=True, kw_only=True):
    """One trigger parameter: its type, its bounds and, if optional, its default."""

    kind: type[int] | type[float] | type[str]
    low: float | None = None
    high: float | None = None
    above: float | None = None
    """Exclusive lower bound."""
    default: Any = None
    required: bool = False


_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*(/[A-Za-z0-9][A-Za-z0-9._:@+-]*)*$")

# What each trigger takes; a parameter not listed for a trigger is refused, so a typo or a
# parameter of another trigger is an error rather than silently ignored.
PARAMS: dict[str, dict[str, Param]] = {
    "high_latency": {
        "ttft_ms": Param(kind=int, low=1, high=3_600_000),
        "p50_multiple": Param(kind=float, above=1, high=1_000),
    },
    "low_throughput": {
        "min_tokens_per_second": Param(kind=float, above=0, high=1_000_000, required=True),
        "min_output_tokens": Param(kind=int, low=0, high=10**9, default=50),
    },
    "failed_stream": {},
    "unsatisfactory_content": {
        "repetition_ngram": Param(kind=int, low=2, high=64, default=8),
        "repetition_max": Param(kind=int, low=2, high=10_000, default=12),
    },
    "hallucination": {
        "sample_rate": Param(kind=float, above=0, high=1, required=True),
        "judge_model": Param(kind=str, required=True),
    },
}


class InsuranceRuleRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    description: str
    trigger: Trigger
    params: dict[str, Any]
    """The trigger's parameters, defaults filled in (see `PARAMS`)."""
    models: list[str]
    channels: list[str]
    accounts: list[str]
    payout_percent: int
    cap_per_request_nano: int | None
    cap_per_day_nano: int | None
    min_cost_nano: int
    enabled: bool
    created_at: datetime


class RateLimitPolicyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    description: str
    applies_to: AppliesTo
    subjects: list[str]
    """Key ids (or account ids, per `applies_to`) it limits; empty: every key (account)."""
    models: list[str]
    rpm: int | None
    tpm: int | None
    burst: int | None
    enabled: bool
    created_at: datetime


def _param(name: str, spec: Param, value: Any) -> Any:
    field = f"params.{name}"
    if spec.kind is str:
        if not isinstance(value, str) or not _SLUG.match(value) or len(value) > 200:
            raise Invalid("must be a model slug such as openai/gpt-4o-mini", field)
        return value
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if not numeric or (spec.kind is int and not float(value).is_integer()):
        raise Invalid(f"must be {'an integer' if spec.kind is int else 'a number'}", field)
    number: float = int(value) if spec.kind is int else float(value)
    if spec.above is not None and not number > spec.above:
        raise Invalid(f"must be above {spec.above:g}", field)
    if spec.low is not None and number < spec.low:
        raise Invalid(f"must be at least {spec.low:g}", field)
    if spec.high is not None and number > spec.high:
        raise Invalid(f"must be at most {spec.high:g}", field)
    return number


def trigger_params(trigger: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a `trigger` rule, checked, with defaults filled in; None means unset."""
    specs = PARAMS[trigger]
    params: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        if name not in specs:
            raise Invalid(f"{trigger} takes no parameter {name!r}", f"params.{name}")
        params[name] = _param(name, specs[name], value)
    for name, spec in specs.items():
        if name in params:
            continue
        if spec.required:
            raise Invalid(f"{trigger} needs {name}", f"params.{name}")
        if spec.default is not None:
            params[name] = spec.default
    if trigger == "high_latency" and not params:
        raise Invalid("high_latency needs ttft_ms, p50_multiple or both", "params.ttft_ms")
    return params


def _check_rule(values: dict[str, Any], current: dict[str, Any]) -> None:
    merged = {**current, **values}
    trigger = merged["trigger"]
    if trigger not in TRIGGERS:
        raise Invalid(f"one of {', '.join(TRIGGERS)}", "trigger")
    if "params" in values or "trigger" in values:
        # Changing the trigger starts its parameters afresh; otherwise given ones are merged
        # over the current ones (None removes one).
        base = dict(current["params"]) if trigger == current.get("trigger") else {}
        base.update(values.get("params") or {})
        values["params"] = trigger_params(trigger, base)
    if not 0 <= merged["payout_percent"] <= 100:
        raise Invalid("must be between 0 and 100", "payout_percent")
    for cap in ("cap_per_request_nano", "cap_per_day_nano", "min_cost_nano"):
        if merged[cap] is not None and not 0 <= merged[cap] <= MAX_NANO:
            raise Invalid(f"must be between 0 and {MAX_NANO}", cap)
    if "models" in values:
        values["models"] = check_model_patterns(values["models"])
    for scope in ("channels", "accounts"):
        if scope in values and len(set(values[scope])) != len(values[scope]):
            raise Invalid("duplicate entry", scope)


def _check_policy(values: dict[str, Any], current: dict[str, Any]) -> None:
    merged = {**current, **values}
    if str(merged.get("id", "")).startswith(KEY_LIMIT_PREFIX):
        raise Invalid(f"{KEY_LIMIT_PREFIX!r} names a key's own limits", "id")
    if merged["applies_to"] not in ("key", "account"):
        raise Invalid("one of key, account", "applies_to")
    if "subjects" in values and len(set(values["subjects"])) != len(values["subjects"]):
        raise Invalid("duplicate entry", "subjects")
    for name in ("rpm", "tpm", "burst"):
        if merged[name] is not None and merged[name] < 1:
            raise Invalid("must be at least 1", name)
    if merged["rpm"] is None and merged["tpm"] is None:
        raise Invalid("a policy limits rpm, tpm or both", "rpm")
    if "models" in values:
        values["models"] = check_model_patterns(values["models"])


async def _check_subjects(conn: AsyncConnection, policy: dict[str, Any]) -> None:
    """Each subject names an existing key or account, whichever the policy applies to."""
    table = t.api_keys if policy["applies_to"] == "key" else t.accounts
    subjects = policy["subjects"]
    found = set((await conn.execute(select(table.c.id).where(table.c.id.in_(subjects)))).scalars())
    for i, subject in enumerate(subjects):
        if subject not in found:
            raise Invalid(f"unknown {policy['applies_to']} {subject!r}", f"subjects[{i}]")


async def _no_references(conn: AsyncConnection, policy: dict[str, Any]) -> None:
    return None


class _Kind(msgspec.Struct, frozen=True):
    table: Table
    record: type[Any]
    what: str
    check: Any
    references: Any = _no_references
    """Checks of the merged row against other tables, inside the write's transaction."""

    @property
    def key(self) -> Column[Any]:
        return self.table.c.id


RULES = _Kind(t.insurance_rules, InsuranceRuleRecord, "insurance rule", _check_rule)
POLICIES = _Kind(
    t.rate_limit_policies,
    RateLimitPolicyRecord,
    "rate-limit policy",
    _check_policy,
    _check_subjects,
)


async def _create(store: Store, kind: _Kind, ident: str, values: dict[str, Any]) -> Any:
    kind.check(values, {"id": ident})
    message = f"{kind.what} {ident!r} already exists"
    async with store.transaction() as conn:
        if (await conn.execute(select(exists().where(kind.key == ident)))).scalar():
            raise Conflict(message, "id")
        await kind.references(conn, values)
        async with conflict_on_integrity(message, "id"):
            await conn.execute(kind.table.insert().values(id=ident, created_at=now_utc(), **values))
        return to_record(await fetch(conn, kind.table, kind.key, ident, kind.what), kind.record)


async def _update(store: Store, kind: _Kind, ident: str, changes: dict[str, Any]) -> Any:
    values = unset_free(changes)
    async with store.transaction() as conn:
        current = dict((await fetch(conn, kind.table, kind.key, ident, kind.what))._mapping)
        kind.check(values, current)
        await kind.references(conn, {**current, **values})
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
    params: Mapping[str, Any] | None = None,
    models: Sequence[str] = (),
    channels: Sequence[str] = (),
    accounts: Sequence[str] = (),
    payout_percent: int = 100,
    cap_per_request_nano: int | None = None,
    cap_per_day_nano: int | None = None,
    min_cost_nano: int = 0,
    enabled: bool = True,
) -> InsuranceRuleRecord:
    values = {
        "description": description,
        "trigger": trigger,
        "params": dict(params or {}),
        "models": list(models),
        "channels": list(channels),
        "accounts": list(accounts),
        "payout_percent": payout_percent,
        "cap_per_request_nano": cap_per_request_nano,
        "cap_per_day_nano": cap_per_day_nano,
        "min_cost_nano": min_cost_nano,
        "enabled": enabled,
    }
    record: InsuranceRuleRecord = await _create(store, RULES, rule_id, values)
    return record


async def update_insurance_rule(store: Store, rule_id: str, **changes: Any) -> InsuranceRuleRecord:
    """Change some fields; `params` are merged over the current ones unless the trigger
    changes (None removes a parameter)."""
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
    subjects: Sequence[str] = (),
    models: Sequence[str] = (),
    rpm: int | None = None,
    tpm: int | None = None,
    burst: int | None = None,
    enabled: bool = True,
) -> RateLimitPolicyRecord:
    values = {
        "description": description,
        "applies_to": applies_to,
        "subjects": list(subjects),
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
    """Change some fields; the subjects are checked against `applies_to` as it ends up."""
    record: RateLimitPolicyRecord = await _update(store, POLICIES, policy_id, changes)
    return record


async def get_rate_limit_policy(store: Store, policy_id: str) -> RateLimitPolicyRecord:
    record: RateLimitPolicyRecord = await _get(store, POLICIES, policy_id)
    return record


async def list_rate_limit_policies(store: Store) -> list[RateLimitPolicyRecord]:
    return await _list(store, POLICIES)


async def delete_rate_limit_policy(store: Store, policy_id: str) -> None:
    await _delete(store, POLICIES, policy_id)
