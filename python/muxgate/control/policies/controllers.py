"""Insurance rules and rate-limit policies (storage only: no routing change to publish)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from msgspec import UnsetType

from muxgate.control.errors import responses
from muxgate.control.fields import nano
from muxgate.control.policies.schemas import (
    InsuranceRule,
    InsuranceRuleCreate,
    InsuranceRuleUpdate,
    RateLimitPolicy,
    RateLimitPolicyCreate,
    RateLimitPolicyUpdate,
)
from muxgate.store import Store, policies


def _rule_fields(data: JSONBody[InsuranceRuleCreate] | InsuranceRuleUpdate) -> dict[str, Any]:
    fields = msgspec.structs.asdict(data)
    fields.pop("id", None)
    for cap in ("cap_per_request", "cap_per_day"):
        value = fields.pop(cap)
        fields[f"{cap}_nano"] = value if isinstance(value, UnsetType) else nano(value, cap)
    return fields


class InsuranceRuleController(Controller):
    path = "/insurance-rules"
    tags = ("policies",)

    @get("/", responses=responses())
    async def list_insurance_rules(self, store: NamedDependency[Store]) -> list[InsuranceRule]:
        return [InsuranceRule.of(r) for r in await policies.list_insurance_rules(store)]

    @post("/", responses=responses(409, 422))
    async def create_insurance_rule(
        self, store: NamedDependency[Store], data: JSONBody[InsuranceRuleCreate]
    ) -> InsuranceRule:
        record = await policies.create_insurance_rule(store, data.id, **_rule_fields(data))
        return InsuranceRule.of(record)

    @get("/{rule_id:str}", responses=responses(404))
    async def get_insurance_rule(
        self, store: NamedDependency[Store], rule_id: FromPath[str]
    ) -> InsuranceRule:
        return InsuranceRule.of(await policies.get_insurance_rule(store, rule_id))

    @patch("/{rule_id:str}", responses=responses(404, 422))
    async def update_insurance_rule(
        self,
        store: NamedDependency[Store],
        rule_id: FromPath[str],
        data: JSONBody[InsuranceRuleUpdate],
    ) -> InsuranceRule:
        record = await policies.update_insurance_rule(store, rule_id, **_rule_fields(data))
        return InsuranceRule.of(record)

    @delete("/{rule_id:str}", responses=responses(404))
    async def delete_insurance_rule(
        self, store: NamedDependency[Store], rule_id: FromPath[str]
    ) -> None:
        await policies.delete_insurance_rule(store, rule_id)


class RateLimitPolicyController(Controller):
    path = "/rate-limit-policies"
    tags = ("policies",)

    @get("/", responses=responses())
    async def list_rate_limit_policies(
        self, store: NamedDependency[Store]
    ) -> list[RateLimitPolicy]:
        return [RateLimitPolicy.of(p) for p in await policies.list_rate_limit_policies(store)]

    @post("/", responses=responses(409, 422))
    async def create_rate_limit_policy(
        self, store: NamedDependency[Store], data: JSONBody[RateLimitPolicyCreate]
    ) -> RateLimitPolicy:
        fields = msgspec.structs.asdict(data)
        record = await policies.create_rate_limit_policy(store, fields.pop("id"), **fields)
        return RateLimitPolicy.of(record)

    @get("/{policy_id:str}", responses=responses(404))
    async def get_rate_limit_policy(
        self, store: NamedDependency[Store], policy_id: FromPath[str]
    ) -> RateLimitPolicy:
        return RateLimitPolicy.of(await policies.get_rate_limit_policy(store, policy_id))

    @patch("/{policy_id:str}", responses=responses(404, 422))
    async def update_rate_limit_policy(
        self,
        store: NamedDependency[Store],
        policy_id: FromPath[str],
        data: JSONBody[RateLimitPolicyUpdate],
    ) -> RateLimitPolicy:
        fields = msgspec.structs.asdict(data)
        record = await policies.update_rate_limit_policy(store, policy_id, **fields)
        return RateLimitPolicy.of(record)

    @delete("/{policy_id:str}", responses=responses(404))
    async def delete_rate_limit_policy(
        self, store: NamedDependency[Store], policy_id: FromPath[str]
    ) -> None:
        await policies.delete_rate_limit_policy(store, policy_id)
