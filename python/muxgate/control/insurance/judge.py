"""The hallucination judge: a background job of the control plane that grades the cases the
engine sampled for a `hallucination` rule, by asking the rule's judge model through the gateway
itself, and books a claim for each answer the judge finds fabricated.

The gateway, and the key that pays for the judge's requests, are the operator's configuration
(`JudgeSettings`). A case waits until the judge can answer: an unreachable gateway or a refused
key leaves it waiting; an unusable answer is asked again with backoff, and given up on (the
failure recorded on the case) after `max_attempts` passes."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec
from sqlalchemy import select

from muxgate import __version__
from muxgate.control.insurance.grading import (
    JudgeVerdict,
    UnusableAnswer,
    grading_request,
    parse_reply,
)
from muxgate.store import tables as t
from muxgate.store.cases import DueCase, defer_judgement, due_cases, mark_judged
from muxgate.store.claims import ClaimSource, book_claims, credited
from muxgate.store.keys import digest_of
from muxgate.store.ledger import now_utc
from muxgate.store.policies import InsuranceRuleRecord, list_insurance_rules
from muxgate.store.redact import redact_text
from muxgate.store.store import Store
from muxgate.store.usage import get_usage
from muxgate.wire.usage import Verdict

log = logging.getLogger("muxgate.control.judge")

URL_ENV = "MUXGATE_JUDGE_URL"
KEY_ENV = "MUXGATE_JUDGE_KEY"
INTERVAL_ENV = "MUXGATE_JUDGE_INTERVAL"
RETRY_ENV = "MUXGATE_JUDGE_RETRY"
INTERVAL_SECONDS = 10.0
RETRY_SECONDS = 60.0


class JudgeSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str | None = None
    """The gateway's base URL (`http://host:port`); the judge posts to
    `{url}/api/v1/chat/completions`."""
    key: str | None = None
    """An ordinary API key of an account the operator funds: it pays for the judge's requests."""
    interval: float = INTERVAL_SECONDS
    """Seconds between passes."""
    retry: float = RETRY_SECONDS
    """Seconds before asking again after an unusable answer, times 4 at each further failure."""
    timeout: float = 120.0
    batch: int = 20
    """Cases per pass, oldest first."""
    concurrency: int = 4
    """Cases judged at once."""
    max_attempts: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> JudgeSettings:
        def seconds(name: str, default: float) -> float:
            raw = env.get(name)
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = 0.0
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
            return value

        return cls(
            url=(env.get(URL_ENV) or "").rstrip("/") or None,
            key=env.get(KEY_ENV) or None,
            interval=seconds(INTERVAL_ENV, INTERVAL_SECONDS),
            retry=seconds(RETRY_ENV, RETRY_SECONDS),
        )


class GatewayRefused(Exception):
    """The gateway could not be reached or refused the judge's key: not the judge's fault, so
    the case waits without the attempt counting."""


def judge_credit(rule: InsuranceRuleRecord, cost_nano: int, left_nano: int) -> int:
    """The credit a hallucination verdict earns, computed as the engine does for its own rules:
    the rule's share of the cost, within its per-request cap, nothing below its minimum cost
    (or for a free request), and never more than `left_nano` (the cost less what the request's
    other claims got)."""
    if cost_nano < max(rule.min_cost_nano, 1):
        return 0
    credit = cost_nano * rule.payout_percent // 100
    if rule.cap_per_request_nano is not None:
        credit = min(credit, rule.cap_per_request_nano)
    return max(0, min(credit, left_nano))


def backoff(settings: JudgeSettings, attempts: int) -> float:
    """Seconds before the next pass on a case whose judge failed `attempts` times."""
    return float(settings.retry * 4 ** max(attempts - 1, 0))


def _outcome(
    rule_id: str,
    judge_model: str | None,
    *,
    hallucination: bool | None = None,
    reason: str = "",
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "judge_model": judge_model,
        "hallucination": hallucination,
        "reason": reason,
        "error": error,
    }


class Judge:
    """One pass at a time (`run_once`); the control plane calls it every `interval`."""

    def __init__(
        self,
        store: Store,
        settings: JudgeSettings,
        on_unblocked: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.settings = settings
        self.on_unblocked = on_unblocked
        self._warned = False
        self._refused_in_pass = False
        self._own_account: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.settings.url and self.settings.key)

    async def run_once(self, now: datetime | None = None) -> int:
        """Judge the cases due now; returns how many were finished (judged or given up)."""
        now = now or now_utc()
        cases = await due_cases(self.store, now, self.settings.batch)
        if not cases:
            return 0
        if not self.configured:
            if not self._warned:
                missing = KEY_ENV if self.settings.url else f"{URL_ENV} (--judge-url)"
                log.warning(
                    "insurance cases await the hallucination judge, but %s is not set: they "
                    "stay waiting until it is",
                    missing,
                )
                self._warned = True
            return 0
        rules = {r.id: r for r in await list_insurance_rules(self.store)}
        own = await self._judge_account()
        self._refused_in_pass = False
        limit = asyncio.Semaphore(self.settings.concurrency)
        headers = {
            "authorization": f"Bearer {self.settings.key}",
            "user-agent": f"muxgate-judge/{__version__}",
        }
        async with httpx.AsyncClient(timeout=self.settings.timeout, headers=headers) as client:

            async def one(case: DueCase) -> bool:
                async with limit:
                    try:
                        return await self._judge_case(client, case, rules, own, now)
                    except Exception as exc:
                        # One case that cannot be handled must not hold up the queue behind it.
                        log.exception("hallucination judge: case %s failed", case.request_id)
                        return await self._failed(case, exc, now)

            finished = await asyncio.gather(*(one(c) for c in cases))
        return sum(finished)

    async def _judge_account(self) -> str | None:
        """The account the judge's key belongs to: its own requests are never judged, so a
        judge account that retains content cannot feed the judge forever."""
        if self._own_account is None and self.settings.key:
            k = t.api_keys
            query = select(k.c.account_id).where(k.c.digest == digest_of(self.settings.key))
            async with self.store.read() as conn:
                self._own_account = (await conn.execute(query)).scalar()
        return self._own_account

    async def _ask(
        self, client: httpx.AsyncClient, judge_model: str, case: DueCase
    ) -> JudgeVerdict:
        body = grading_request(judge_model, case.surface, case.request, case.answer)
        try:
            response = await client.post(f"{self.settings.url}/api/v1/chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise UnusableAnswer(f"no answer within {self.settings.timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise GatewayRefused(f"{self.settings.url} is unreachable: {exc}") from exc
        if response.status_code in (401, 402, 403, 429):
            raise GatewayRefused(f"HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code != 200:
            raise UnusableAnswer(f"HTTP {response.status_code}: {response.text[:200]}")
        return parse_reply(response.content)

    async def _judge_case(
        self,
        client: httpx.AsyncClient,
        case: DueCase,
        rules: dict[str, InsuranceRuleRecord],
        own: str | None,
        now: datetime,
    ) -> bool:
        """Ask the judges this case still needs; book it when all have spoken (True), else
        keep it waiting with what was learnt (False)."""
        said = {o["rule_id"]: o for o in case.judge_outcome or []}
        errors: dict[str, str] = {}
        for rule_id in case.judge_rules:
            if rule_id in said:
                continue
            rule = rules.get(rule_id)
            if rule is None or rule.trigger != "hallucination" or not rule.enabled:
                said[rule_id] = _outcome(rule_id, None, error="the rule is gone or disabled")
                continue
            model = str(rule.params["judge_model"])
            if case.account_id == own:
                said[rule_id] = _outcome(rule_id, model, error="the judge's own request")
                continue
            try:
                verdict = await self._ask(client, model, case)
            except GatewayRefused as exc:
                if not self._refused_in_pass:
                    log.warning("hallucination judge: %s; the cases wait", exc)
                    self._refused_in_pass = True
                await self._defer(case, said, case.judge_attempts, now)
                return False
            except UnusableAnswer as exc:
                errors[rule_id] = str(exc)
                continue
            # The judge saw only redacted content, but may still phrase something like a
            # secret; its reason is kept and shown to the account, so it is redacted too.
            said[rule_id] = _outcome(
                rule_id,
                model,
                hallucination=verdict.hallucination,
                reason=redact_text(verdict.reason),
            )
        if errors:
            attempts = case.judge_attempts + 1
            if attempts < self.settings.max_attempts:
                log.info(
                    "hallucination judge: case %s unusable answer (%s); asking again later",
                    case.request_id,
                    "; ".join(errors.values()),
                )
                await self._defer(
                    case, said, attempts, now + timedelta(seconds=backoff(self.settings, attempts))
                )
                return False
            for rule_id, error in errors.items():
                model = str(rules[rule_id].params["judge_model"])
                said[rule_id] = _outcome(
                    rule_id, model, error=f"given up after {attempts} attempts: {error}"
                )
            log.warning(
                "hallucination judge: case %s given up after %d attempts", case.request_id, attempts
            )
            # The count first: a crash before booking asks once more, then gives up again.
            await self._defer(case, said, attempts, now)
        await self._book(case, [said[r] for r in case.judge_rules if r in said], rules, now)
        return True

    async def _failed(self, case: DueCase, exc: Exception, now: datetime) -> bool:
        """Count a pass that failed on the case; past `max_attempts` it is given up."""
        attempts = case.judge_attempts + 1
        if attempts < self.settings.max_attempts:
            next_at = now + timedelta(seconds=backoff(self.settings, attempts))
            await defer_judgement(
                self.store,
                case.request_id,
                outcome=case.judge_outcome or [],
                attempts=attempts,
                next_at=next_at,
            )
            return False
        error = f"given up after {attempts} attempts: {type(exc).__name__}: {exc}"
        outcome = [_outcome(r, None, error=error) for r in case.judge_rules]
        async with self.store.transaction() as conn:
            await mark_judged(conn, [case.request_id], {}, now, {case.request_id: outcome})
        return True

    async def _defer(
        self, case: DueCase, said: dict[str, dict[str, Any]], attempts: int, next_at: datetime
    ) -> None:
        outcome = [said[r] for r in case.judge_rules if r in said]
        await defer_judgement(
            self.store, case.request_id, outcome=outcome, attempts=attempts, next_at=next_at
        )

    async def _book(
        self,
        case: DueCase,
        outcome: list[dict[str, Any]],
        rules: dict[str, InsuranceRuleRecord],
        now: datetime,
    ) -> None:
        found = [o for o in outcome if o["hallucination"] is True]
        usage = await get_usage(self.store, case.request_id) if found else None
        if usage is None:
            # Nothing to pay (or no usage record left to pay from): the case is judged.
            async with self.store.transaction() as conn:
                await mark_judged(conn, [case.request_id], {}, now, {case.request_id: outcome})
            return
        left = usage.cost_nano_usd - await credited(self.store, case.request_id)
        verdicts: list[Verdict] = []
        for said in found:
            rule = rules.get(said["rule_id"])
            credit = 0 if rule is None else judge_credit(rule, usage.cost_nano_usd, left)
            if credit <= 0:
                continue
            left -= credit
            reason = said["reason"] or "fabricated or false facts"
            verdicts.append(
                Verdict(
                    rule_id=said["rule_id"],
                    trigger="hallucination",
                    reason=f"judge {said['judge_model']}: {reason}",
                    credit_nano=credit,
                )
            )
        source = ClaimSource(
            request_id=case.request_id,
            account_id=case.account_id,
            key_id=usage.key_id,
            model=usage.model,
            channel_id=usage.channel_id,
            created_at=case.created_at,
            verdicts=verdicts,
        )
        result = await book_claims(self.store, [source], now, {case.request_id: outcome})
        if result.claims:
            log.info(
                "hallucination judge: case %s credited %d nano-USD",
                case.request_id,
                result.credited_nano,
            )
        if result.unblocked_accounts:
            await self.on_unblocked()
