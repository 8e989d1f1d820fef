"""Insurance rules and rate-limit policies, both part of the routing snapshot: every change is
published."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from msgspec import UnsetType

from muxgate.control.deps import RoutingChanged
from muxgate.control.errors import responses
from muxgate.control.fields import nano
from muxgate.control.policies.schemas import (
    InsuranceRule,
    InsuranceRuleCreate,
    InsuranceRuleUpdate,
    RateLimitPolicy,
    RateLimitPolicyCreate,
    RateLimitPolicyUpdate,
    TriggerParams,
)
from muxgate.store import Store, policies
from muxgate.store.rows import unset_free


def _rule_fields(data: InsuranceRuleCreate | InsuranceRuleUpdate) -> dict[str, Any]:
    fields = msgspec.structs.asdict(data)
    fields.pop("id", None)
    for cap in ("cap_per_request", "cap_per_day", "min_cost"):
        value = fields.pop(cap)
        fields[f"{cap}_nano"] = value if isinstance(value, UnsetType) else nano(value, cap)
    params = fields["params"]
    if isinstance(params, TriggerParams):
        fields["params"] = {
            k: v for k, v in msgspec.structs.asdict(params).items() if v is not None
        }
    elif not isinstance(params, UnsetType):
        # Given fields only; None stays, to remove that parameter.
        fields["params"] = unset_free(msgspec.structs.asdict(params))
    return unset_free(fields)


class InsuranceRuleController(Controller):
    path = "/insurance-rules"
    tags = ("policies",)

    @get("/", responses=responses())
    async def list_insurance_rules(self, store: NamedDependency[Store]) -> list[InsuranceRule]:
        return [InsuranceRule.of(r) for r in await policies.list_insurance_rules(store)]

    @post("/", responses=responses(409, 422))
    async def create_insurance_rule(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        data: JSONBody[InsuranceRuleCreate],
    ) -> InsuranceRule:
        """A rule; enabled rules reach every worker with the next snapshot."""
        record = await policies.create_insurance_rule(store, data.id, **_rule_fields(data))
        await changed()
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
        changed: NamedDependency[RoutingChanged],
        rule_id: FromPath[str],
        data: JSONBody[InsuranceRuleUpdate],
    ) -> InsuranceRule:
        """Change some fields; `params` merge over the current ones (see `TriggerParamsUpdate`)."""
        record = await policies.update_insurance_rule(store, rule_id, **_rule_fields(data))
        await changed()
        return InsuranceRule.of(record)

    @delete("/{rule_id:str}", responses=responses(404))
    async def delete_insurance_rule(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        rule_id: FromPath[str],
    ) -> None:
        """Its claims stay; verdicts still in flight are booked without its daily cap."""
        await policies.delete_insurance_rule(store, rule_id)
        await changed()


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
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        data: JSONBody[RateLimitPolicyCreate],
    ) -> RateLimitPolicy:
        """A policy; enabled policies reach every worker with the next snapshot."""
        fields = msgspec.structs.asdict(data)
        record = await policies.create_rate_limit_policy(store, fields.pop("id"), **fields)
        await changed()
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
        changed: NamedDependency[RoutingChanged],
        policy_id: FromPath[str],
        data: JSONBody[RateLimitPolicyUpdate],
    ) -> RateLimitPolicy:
        """Change some fields; `subjects` are checked against `applies_to` as it ends up."""
        fields = msgspec.structs.asdict(data)
        record = await policies.update_rate_limit_policy(store, policy_id, **fields)
        await changed()
        return RateLimitPolicy.of(record)

    @delete("/{policy_id:str}", responses=responses(404))
    async def delete_rate_limit_policy(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        policy_id: FromPath[str],
    ) -> None:
        await policies.delete_rate_limit_policy(store, policy_id)
        await changed()
