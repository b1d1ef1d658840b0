"""Budgets that hold under concurrency: a request reserves its worst-case cost before dispatch.

Each budget (a key's, a key's on one model, its user's, its team's) has a ledger in the budgets
KV bucket: spend settled by metering plus the reservations of requests in flight. A request
reserves by compare-and-set on every ledger that covers it, so all edges together never admit
more than the budget can pay for; metering replaces the reservation with the actual cost when the
usage event lands (and releases it on failure), and reservations of lost requests expire.

A request that does not fit only because of reservations that may still shrink (requests in
flight whose last reply is not in) waits for the ledger to change, then tries again: a burst is
admitted as far as the budget really allows, not as far as worst cases fill it. The wait is fed by
the ledgers' KV watch (or the first of those reservations expiring), bounded by
`LLMGW_BUDGET_WAIT_SECONDS` and the request's deadline; while it waits the request holds no
reservation. A request that could not fit even were they all gone is refused at once.

Within one edge, reservations on the same ledger are serialised by a lock, so concurrent requests
of one key cost one KV round trip each instead of racing; across edges the compare-and-set decides.
Requests of callers without any budget touch no ledger (only their ledger keys are named, so that
metering tracks their spend).

A budget can hold only what has a price: a caller with a budget asking for a model with no known
price is refused (400 `model_price_unknown`), unless the operator allows unpriced models
(`general_settings.allow_unpriced_models`, `LLMGW_ALLOW_UNPRICED_MODELS`): then the request is
served at cost 0 and its usage row says `cost_known: false`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError

from gateway.auth import Principal
from gateway.budget_refusals import Crowded, budget_exceeded, crowded, price_unknown
from gateway.errors import GatewayError
from gateway.gateway_budget import GATEWAY_ANCHOR, GATEWAY_LABEL, GATEWAY_LEDGER
from llmgw.config import Deployment
from llmgw.contracts import (
    BudgetLedger,
    ErrorCode,
    LedgerKind,
    LedgerRef,
    Limits,
    Reservation,
    Subjects,
    Units,
    ledger_key,
)
from llmgw.durations import budget_period, period_reset_at
from llmgw.kv import WatchedMap, open_bucket
from llmgw.prices import Price, cost, price_for, units_cost

log = structlog.get_logger()

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
CAS_ATTEMPTS = 20
RESERVATION_GRACE = 60.0  # a reservation outlives its request's deadline by this much


class Budget(msgspec.Struct, frozen=True):
    """One budget covering a request."""

    key: str  # ledger key
    label: str  # how the error message names it
    ref: LedgerRef


def _budget(key: str, label: str, holder: Limits, created_at: float, now: float) -> Budget:
    period = budget_period(holder.budget_duration, created_at, now)
    return Budget(key, label, LedgerRef(period=period, max_budget=holder.max_budget, soft_budget=holder.soft_budget))


def covering(principal: Principal, model: str, now: float) -> list[Budget]:
    """Every ledger the request counts against (with or without a limit)."""
    out: list[Budget] = []
    key, user, team = principal.key, principal.user, principal.team
    if key is not None:
        out.append(_budget(ledger_key(LedgerKind.KEY, key.token), f"key {key.key_name}", key, key.created_at, now))
        model_budget = key.model_max_budget.get(model)
        if model_budget is not None:
            out.append(
                Budget(
                    ledger_key(LedgerKind.KEY_MODEL, key.token, model),
                    f"key {key.key_name} on {model}",
                    LedgerRef(period=out[0].ref.period, max_budget=model_budget),
                )
            )
    elif principal.caller.key_hash:
        out.append(Budget(ledger_key(LedgerKind.KEY, principal.caller.key_hash), "master key", LedgerRef()))
    if user is not None:
        out.append(_budget(ledger_key(LedgerKind.USER, user.user_id), f"user {user.user_id}", user, user.created_at, now))
    if team is not None:
        out.append(_budget(ledger_key(LedgerKind.TEAM, team.team_id), f"team {team.team_id}", team, team.created_at, now))
    org = principal.organization
    if org is not None:  # (bounded by the budget object its `budget_id` names, gateway/auth.py)
        ident = org.organization_id
        out.append(_budget(ledger_key(LedgerKind.ORG, ident), f"organization {ident}", org, org.created_at, now))
    return out


def current(ledger: BudgetLedger | None, period: int, now: float) -> BudgetLedger:
    """The ledger as of now: a new period starts from zero; expired reservations no longer count."""
    if ledger is None:
        return BudgetLedger(period=period)
    if period > ledger.period:
        ledger = msgspec.structs.replace(ledger, spent=0.0, model_spend={}, period=period)
    if any(r.expires_at <= now for r in ledger.reservations.values()):
        live = {k: r for k, r in ledger.reservations.items() if r.expires_at > now}
        ledger = msgspec.structs.replace(ledger, reservations=live)
    return ledger


def held(ledger: BudgetLedger) -> float:
    return ledger.spent + sum(r.amount for r in ledger.reservations.values())


class WorstCase(msgspec.Struct, frozen=True):
    """The most a request can use: its prompt's bytes (the policy prompts put before it
    included), the completion length it asked for, how many answers (`n`), and units other than
    tokens (images, audio, ...). `capped`: the worker can hold its answer to a cost cap (a lower
    completion limit, a stream stopped); a request that cannot be capped must fit whole."""

    prompt_bytes: int
    max_tokens: int | None = None
    n: int = 1
    units: Units | None = None
    capped: bool = True
    free: bool = False  # costs nothing (counting tokens): nothing to reserve, no price needed


def worst_case_cost(price: Price, worst: WorstCase) -> tuple[float, float]:
    """(worst case, least it can cost): a prompt has at most as many tokens as bytes; each of the
    `n` answers at most `max_tokens`, or the model's output limit. A request that cannot be
    capped needs its whole worst case."""
    completion = (worst.max_tokens or price.max_output_tokens) * max(worst.n, 1)
    units, _ = units_cost(price, worst.units)
    most = cost(price, worst.prompt_bytes, completion) + units
    return most, (cost(price, (worst.prompt_bytes + 3) // 4, 1) + units if worst.capped else most)


def priced(price: Price | None, worst: WorstCase) -> bool:
    """Whether a budget can count what the request uses: a price is known for its tokens or for
    every unit it may use (an explicit price of 0 is a price)."""
    if price is None:
        return False
    _, units_known = units_cost(price, worst.units)
    return units_known or price.input > 0 or price.output > 0


def beyond(principal: Principal, gateway: Limits | None, now: float) -> list[Budget]:
    """The ledgers a request counts against beyond its caller's own: its user's within its team
    (a member's budget object), its end user's (gateway/end_users.py) and the whole gateway's
    (gateway/gateway_budget.py)."""
    out: list[Budget] = []
    member, team, user = principal.member_budget, principal.team, principal.user
    if member is not None and team is not None and user is not None:
        key = ledger_key(LedgerKind.TEAM_MEMBER, team.team_id, user.user_id)
        out.append(_budget(key, f"user {user.user_id} in team {team.team_id}", member, member.created_at, now))
    end_user = principal.end_user
    if end_user is not None:
        key = ledger_key(LedgerKind.END_USER, end_user.user_id)
        out.append(_budget(key, f"end user {end_user.user_id}", end_user, end_user.created_at, now))
    if gateway is not None:
        out.append(_budget(GATEWAY_LEDGER, GATEWAY_LABEL, gateway, GATEWAY_ANCHOR, now))
    return out


class BudgetGuard:
    def __init__(
        self, subjects: Subjects, allow_unpriced: bool = False, gateway: Limits | None = None, wait_seconds: float = 0.0
    ) -> None:
        self.subjects = subjects
        self.wait_seconds = wait_seconds  # how long a request waits for in-flight reservations to settle
        self.waiting = 0  # requests waiting for room now
        self.gateway = gateway  # the whole gateway's budget (litellm_settings.max_budget), if any
        self.allow_unpriced = allow_unpriced  # a budgeted caller may use a model with no price (at cost 0)
        self._unpriced_warned: set[str] = set()
        self.ledgers: WatchedMap[BudgetLedger] = None  # type: ignore[assignment]  # set in start()
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self, js: JetStreamContext) -> None:
        kv = await open_bucket(js, self.subjects.budgets_bucket)
        self.ledgers = WatchedMap(kv, msgspec.json.Decoder(BudgetLedger), "budgets")
        await self.ledgers.start()

    async def stop(self) -> None:
        if self.ledgers is not None:
            await self.ledgers.stop()

    def spend(self, key: str, period: int) -> float:
        """Settled spend of a ledger in the given period (what /key/info shows)."""
        ledger = self.ledgers.items.get(key)
        return ledger.spent if ledger is not None and ledger.period == period else 0.0

    async def admit(
        self,
        principal: Principal,
        model: str,
        deployment: Deployment,
        upstream_model: str,
        worst_case: WorstCase,
        request_id: str,
        deadline: float,
    ) -> tuple[dict[str, LedgerRef], list[str], float | None]:
        """Reserve against every limited budget; (ledgers, reserved ledger keys, cost cap or None).

        Raises 429 `budget_exceeded` naming the budget when one cannot pay for the request, 400
        `model_price_unknown` when the model has no price (unless unpriced models are allowed)."""
        now = time.time()
        budgets = covering(principal, model, now) + beyond(principal, self.gateway, now)
        refs = {b.key: b.ref for b in budgets}
        limited = [b for b in budgets if b.ref.max_budget is not None]
        if not limited or worst_case.free:
            return refs, [], None
        price = price_for(deployment, upstream_model)
        if not priced(price, worst_case):
            if not self.allow_unpriced:
                raise price_unknown(model, deployment, upstream_model, worst_case)
            # Allowed: nothing can be reserved; metering records the request at cost 0.
            if upstream_model not in self._unpriced_warned:
                self._unpriced_warned.add(upstream_model)
                log.warning("unpriced_model_served", model=model, upstream_model=upstream_model, deployment=deployment.id)
            return refs, [], None
        assert price is not None
        worst, least = worst_case_cost(price, worst_case)
        wait_until = min(now + self.wait_seconds, deadline)
        while True:
            try:
                patient = time.time() < wait_until  # (a request that may wait holds out for its whole worst case)
                expires_at = deadline + RESERVATION_GRACE
                reserved, cap = await self._reserve_all(limited, refs, request_id, worst, least, expires_at, patient)
                return refs, reserved, (cap if cap < worst else None)
            except Crowded as refusal:  # (then tried again; once the wait is over, not as patient)
                await self._wait(refusal, wait_until)

    async def _reserve_all(
        self,
        limited: list[Budget],
        refs: dict[str, LedgerRef],
        request_id: str,
        worst: float,
        least: float,
        expires_at: float,
        patient: bool,
    ) -> tuple[list[str], float]:
        """Reserve on every limited ledger, or on none (what was taken is given back on a refusal)."""
        reserved: list[str] = []
        cap = worst
        try:
            for budget in limited:
                taken = await self._reserve(budget, request_id, worst, least, expires_at, patient)
                reserved.append(budget.key)
                cap = min(cap, taken)
        except GatewayError:
            await self.release(request_id, reserved, refs)
            raise
        return reserved, cap

    async def _wait(self, refusal: Crowded, wait_until: float) -> None:
        """Wait until the crowded ledger changes past the revision it refused at, its first
        reservation that may shrink expires, or the wait is over."""
        now = time.time()
        if now >= wait_until:
            return
        until = min(wait_until, refusal.wake_at)
        self.waiting += 1
        try:
            await self.ledgers.changed(refusal.key, refusal.revision, until - now)
        finally:
            self.waiting -= 1

    async def _reserve(
        self, budget: Budget, request_id: str, worst: float, least: float, expires_at: float, patient: bool
    ) -> float:
        lock = self._locks.setdefault(budget.key, asyncio.Lock())
        async with lock:
            return await self._cas(
                budget.key,
                budget.ref.period,
                lambda ledger: self._add(budget, ledger, request_id, worst, least, expires_at, patient),
            )

    def _add(
        self,
        budget: Budget,
        ledger: BudgetLedger,
        request_id: str,
        worst: float,
        least: float,
        expires_at: float,
        patient: bool,
    ) -> tuple[BudgetLedger, float]:
        """Reserve the worst case, or what is left if at least `least` is. A `patient` request
        (it may still wait) that would be refused or cut only because of reservations that may
        shrink raises `Crowded` instead."""
        limit = budget.ref.max_budget or 0.0
        room = limit - held(ledger)
        if room < worst:
            refusal = budget_exceeded(budget.label, limit, ledger, room, least, worst)
            if patient and isinstance(wait := crowded(refusal, budget.key, ledger, limit, least, room), Crowded):
                raise wait
            if room < least:
                raise refusal
        taken = min(worst, room)
        reservations = {**ledger.reservations, request_id: Reservation(taken, expires_at)}
        return msgspec.structs.replace(ledger, reservations=reservations, updated_at=time.time()), taken

    async def release(self, request_id: str, keys: list[str], refs: dict[str, LedgerRef] | None = None) -> None:
        """Give back what a request reserved (it never reached a worker)."""

        def drop(ledger: BudgetLedger) -> tuple[BudgetLedger, None]:
            rest = {k: r for k, r in ledger.reservations.items() if k != request_id}
            return msgspec.structs.replace(ledger, reservations=rest, updated_at=time.time()), None

        for key in keys:
            try:
                async with self._locks.setdefault(key, asyncio.Lock()):
                    await self._cas(key, (refs or {}).get(key, LedgerRef()).period, drop)
            except Exception as exc:
                log.warning("reservation_release_failed", ledger=key, error=str(exc) or type(exc).__name__)

    async def settle(self, request_id: str, keys: list[str], refs: dict[str, LedgerRef], actual: float | None) -> None:
        """The request is over: hold only what it actually cost (metering then moves that into
        `spent`), so the budget it did not use is free for the next request at once."""
        if not keys or actual is None:
            return

        def shrink(ledger: BudgetLedger) -> tuple[BudgetLedger, None]:
            held_now = ledger.reservations.get(request_id)
            if held_now is None or held_now.final:
                return ledger, None  # already settled by metering (or by this edge)
            settled = Reservation(min(held_now.amount, actual), held_now.expires_at, final=True)
            reservations = {**ledger.reservations, request_id: settled}
            return msgspec.structs.replace(ledger, reservations=reservations, updated_at=time.time()), None

        for key in keys:
            try:
                async with self._locks.setdefault(key, asyncio.Lock()):
                    await self._cas(key, refs.get(key, LedgerRef()).period, shrink)
            except Exception as exc:
                log.warning("reservation_settle_failed", ledger=key, error=str(exc) or type(exc).__name__)

    async def _cas(self, key: str, period: int, change: Callable[[BudgetLedger], tuple[BudgetLedger, T]]) -> T:
        """Compare-and-set `change` on a ledger, starting from this edge's watched copy."""
        kv = self.ledgers.kv
        ledger = self.ledgers.items.get(key)
        revision = self.ledgers.revisions.get(key) if ledger is not None else None
        for _ in range(CAS_ATTEMPTS):
            now_ledger = current(ledger, max(period, ledger.period if ledger else 0), time.time())
            try:
                new, result = change(now_ledger)
            except Crowded as refusal:
                refusal.revision = revision or 0  # (a request waiting for room waits for a newer one)
                raise
            if new is now_ledger:
                return result  # nothing to write
            try:
                if revision is None:
                    revision = await kv.create(key, _encoder.encode(new))
                else:
                    revision = await kv.update(key, _encoder.encode(new), last=revision)
                self.ledgers.apply(key, revision, "PUT", _encoder.encode(new))
                return result
            except KeyWrongLastSequenceError:
                try:
                    entry = await kv.get(key)
                    ledger, revision = self.ledgers.decoder.decode(entry.value or b""), entry.revision
                except (KeyNotFoundError, KeyDeletedError):
                    ledger, revision = None, None
        raise GatewayError(
            503, "budget ledger busy; retry", "service_unavailable_error", ErrorCode.UNAVAILABLE, headers={"retry-after": "1"}
        )

    def period_spend(self, kind: str, ident: str, budget_duration: str | None, anchor: float) -> tuple[float, float | None]:
        """(spend in the current budget period, when that period ends) for a key, user or team."""
        now = time.time()
        period = budget_period(budget_duration, anchor, now)
        return self.spend(ledger_key(kind, ident), period), period_reset_at(budget_duration, anchor, now)
