"""What a request holds while it runs: its rate-limit slots and its budget reservation (a `Lease`).

The caller's limits (key, user, team, organization) are taken once; a deployment whose own `rpm`/`tpm`/
`max_parallel_requests` is used up is passed over for the next one the router would use (429 only
when none is left). Then the request's worst-case cost is reserved in every budget that covers it.

A lease ends exactly once, whatever happens to the request:
- `settle(cost, tokens)`: the worker's last reply said what the request cost: the reservation
  shrinks to that cost (metering then moves it into spend) and the slots are freed with the tokens
  used (tokens per minute);
- `release()`: the request never reached a worker: the reservation and the slots are given back;
- `abandon()`: the request was handed to a worker but no last reply reached this edge (the client
  went away, the deadline passed): the slots are freed; the reservation is left to metering, which
  settles it when the worker's usage event arrives (or it expires with the request).
"""

from __future__ import annotations

from gateway.auth import Principal
from gateway.budgets import BudgetGuard, WorstCase
from gateway.errors import GatewayError
from gateway.ratelimits import Admission, Limit, RateLimiter
from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType, LedgerRef, Limits


class LeaseEnd:
    """How a lease ended (the request's log line says it)."""

    HELD = "held"  # not ended yet
    SETTLED = "settled"
    RELEASED = "released"
    METERING = "left_to_metering"


def caller_limits(principal: Principal) -> list[Limit]:
    """The rate limits of the request's key, user, team, its organization and end user (those that set any)."""
    holders: list[tuple[str, str, Limits | None]] = []
    if principal.key is not None:
        holders.append((f"key:{principal.key.token}", f"key {principal.key.key_name}", principal.key))
    if principal.user is not None:
        holders.append((f"user:{principal.user.user_id}", f"user {principal.user.user_id}", principal.user))
    if principal.team is not None:
        holders.append((f"team:{principal.team.team_id}", f"team {principal.team.team_id}", principal.team))
    org = principal.organization
    if org is not None:
        holders.append((f"org:{org.organization_id}", f"organization {org.organization_id}", org))
    member, team, user = principal.member_budget, principal.team, principal.user
    if member is not None and team is not None and user is not None:
        holders.append((f"member:{team.team_id}:{user.user_id}", f"user {user.user_id} in team {team.team_id}", member))
    if principal.end_user is not None:
        end_user = principal.end_user.user_id
        holders.append((f"enduser:{end_user}", f"end user {end_user}", principal.end_user))
    return [
        Limit(scope=scope, label=label, rpm=h.rpm_limit, tpm=h.tpm_limit, max_parallel=h.max_parallel_requests)
        for scope, label, h in holders
        if h is not None and h.rate_limited
    ]


def deployment_limit(deployment: Deployment) -> Limit | None:
    if not (deployment.rpm or deployment.tpm or deployment.max_parallel_requests):
        return None
    return Limit(
        scope=f"deployment:{deployment.id}",
        label=f"deployment {deployment.id}",
        rpm=deployment.rpm,
        tpm=deployment.tpm,
        max_parallel=deployment.max_parallel_requests,
    )


async def take_slots(
    limiter: RateLimiter, principal: Principal, candidates: list[Deployment], request_id: str, deadline: float
) -> tuple[Deployment, list[Admission]]:
    """The caller's slots and those of the first candidate deployment with room; 429 when none has."""
    admissions: list[Admission] = []
    limits = caller_limits(principal)
    if limits:
        admissions.append(await limiter.admit(limits, request_id, deadline))
    refused: GatewayError | None = None
    for deployment in candidates:
        limit = deployment_limit(deployment)
        if limit is None:
            return deployment, admissions
        try:
            admissions.append(await limiter.admit([limit], request_id, deadline))
            return deployment, admissions
        except GatewayError as exc:
            if exc.status != 429:
                await _free(limiter, admissions, 0)
                raise
            refused = refused or exc
    await _free(limiter, admissions, 0)
    if refused is None:  # (candidates is never empty: the router raises 404 for an unknown model)
        raise GatewayError(503, "no deployment can take the request", ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE)
    raise refused


async def _free(limiter: RateLimiter, admissions: list[Admission], tokens: int | None) -> None:
    for a in admissions:
        await limiter.release(a, tokens or 0)


class Lease:
    """A request's rate-limit slots and budget reservation, from admission to its one end."""

    __slots__ = ("_budgets", "_limiter", "admissions", "cost_cap", "deployment", "end", "ledgers", "request_id", "reserved")

    def __init__(
        self,
        limiter: RateLimiter,
        budgets: BudgetGuard,
        request_id: str,
        deployment: Deployment,
        admissions: list[Admission],
        ledgers: dict[str, LedgerRef],
        reserved: list[str],
        cost_cap: float | None,
    ) -> None:
        self._limiter = limiter
        self._budgets = budgets
        self.request_id = request_id
        self.deployment = deployment  # the deployment the limits let the request use first
        self.admissions = admissions
        self.ledgers = ledgers  # every budget ledger the request counts against
        self.reserved = reserved  # the ledgers holding a reservation of it
        self.cost_cap = cost_cap  # USD the budgets could hold, when less than the worst case
        self.end = LeaseEnd.HELD

    def headers(self) -> list[tuple[bytes, bytes]]:
        """OpenAI's x-ratelimit-* headers of the limits the request was counted against."""
        merged: dict[str, str] = {}
        for a in self.admissions:
            merged.update(a.headers())
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]

    def _ending(self, how: str) -> bool:
        if self.end != LeaseEnd.HELD:
            return False
        self.end = how
        return True

    async def settle(self, cost: float | None, tokens: int | None) -> None:
        """The last reply is in: hold only what the request cost, free the slots with its tokens."""
        if self._ending(LeaseEnd.SETTLED):
            await self._budgets.settle(self.request_id, self.reserved, self.ledgers, cost)
            await _free(self._limiter, self.admissions, tokens)

    async def release(self) -> None:
        """The request never reached a worker: give everything back."""
        if self._ending(LeaseEnd.RELEASED):
            await self._budgets.release(self.request_id, self.reserved, self.ledgers)
            await _free(self._limiter, self.admissions, 0)

    async def abandon(self) -> None:
        """No last reply reached this edge: free the slots; metering settles the reservation."""
        if self._ending(LeaseEnd.METERING):
            await _free(self._limiter, self.admissions, 0)


async def admit(
    limiter: RateLimiter,
    budgets: BudgetGuard,
    principal: Principal,
    model: str,
    candidates: list[Deployment],
    worst: WorstCase,
    request_id: str,
    deadline: float,
) -> Lease:
    """Take the request's slots, then reserve its worst case; 429 (or 503) when it does not fit."""
    deployment, admissions = await take_slots(limiter, principal, candidates, request_id, deadline)
    try:
        ledgers, reserved, cost_cap = await budgets.admit(
            principal, model, deployment, deployment.upstream_model_for(model), worst, request_id, deadline
        )
    except BaseException:
        await _free(limiter, admissions, 0)
        raise
    return Lease(limiter, budgets, request_id, deployment, admissions, ledgers, reserved, cost_cap)
