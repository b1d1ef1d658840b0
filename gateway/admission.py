"""Rate limits of a request: its key's, user's and team's, and its deployment's.

The caller's limits are taken once; a deployment whose own `rpm`/`tpm`/`max_parallel_requests`
is used up is passed over for the next one the router would use (429 only when none is left).
"""

from __future__ import annotations

from gateway.auth import Principal
from gateway.errors import GatewayError
from gateway.ratelimits import Admission, Limit, RateLimiter
from llmgw.config import Deployment


def caller_limits(principal: Principal) -> list[Limit]:
    out: list[Limit] = []
    key, user, team = principal.key, principal.user, principal.team
    if key is not None and (key.rpm_limit or key.tpm_limit or key.max_parallel_requests):
        out.append(
            Limit(
                scope=f"key:{key.token}",
                label=f"key {key.key_name}",
                rpm=key.rpm_limit,
                tpm=key.tpm_limit,
                max_parallel=key.max_parallel_requests,
            )
        )
    if user is not None and (user.rpm_limit or user.tpm_limit or user.max_parallel_requests):
        out.append(
            Limit(
                scope=f"user:{user.user_id}",
                label=f"user {user.user_id}",
                rpm=user.rpm_limit,
                tpm=user.tpm_limit,
                max_parallel=user.max_parallel_requests,
            )
        )
    if team is not None and (team.rpm_limit or team.tpm_limit or team.max_parallel_requests):
        out.append(
            Limit(
                scope=f"team:{team.team_id}",
                label=f"team {team.team_id}",
                rpm=team.rpm_limit,
                tpm=team.tpm_limit,
                max_parallel=team.max_parallel_requests,
            )
        )
    return out


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


class Admitted:
    """What a request holds from its limits, and the deployment they let it use."""

    __slots__ = ("admissions", "deployment")

    def __init__(self, deployment: Deployment, admissions: list[Admission]) -> None:
        self.deployment = deployment
        self.admissions = admissions

    def headers(self) -> list[tuple[bytes, bytes]]:
        merged: dict[str, str] = {}
        for a in self.admissions:
            merged.update(a.headers())
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]


async def admit(
    limiter: RateLimiter, principal: Principal, candidates: list[Deployment], request_id: str, deadline: float
) -> Admitted:
    admissions: list[Admission] = []
    limits = caller_limits(principal)
    if limits:
        admissions.append(await limiter.admit(limits, request_id, deadline))
    refused: GatewayError | None = None
    for deployment in candidates:
        limit = deployment_limit(deployment)
        if limit is None:
            return Admitted(deployment, admissions)
        try:
            admissions.append(await limiter.admit([limit], request_id, deadline))
            return Admitted(deployment, admissions)
        except GatewayError as exc:
            if exc.status != 429:
                await release(limiter, Admitted(deployment, admissions), 0)
                raise
            refused = refused or exc
    await release(limiter, Admitted(candidates[0], admissions), 0)
    assert refused is not None
    raise refused


async def release(limiter: RateLimiter, admitted: Admitted | None, tokens: int | None) -> None:
    if admitted is None:
        return
    for a in admitted.admissions:
        await limiter.release(a, tokens or 0)
