"""`/team/member_add`, `/team/member_delete`, `/team/member_update`: who is on a team, and as what.

A proxy admin, an admin of that team, or an admin of its organization may change its members. Every write is a compare-and-set
computed from the stored record, so concurrent calls never lose a member nor fail because another
call created the same new user first."""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec
from litestar import Request, Response, post
from msgspec import UNSET, UnsetType

from gateway.admin import member_refs
from gateway.admin.common import caller, json_response, known_budget, render
from gateway.admin.params import bad_param, decode_body
from gateway.admin.store import not_found
from gateway.admin.teams import TeamService
from gateway.auth import Principal, forbidden
from gateway.edge import Edge
from llmgw.contracts import TEAM_ROLE_ADMIN, TEAM_ROLES, BudgetRecord, TeamMember, TeamRecord, budget_key


class MemberAdd(msgspec.Struct, kw_only=True):
    team_id: str
    member: TeamMember | list[TeamMember]
    max_budget_in_team: float | None = None  # LiteLLM's: each added member's budget within the team


class MemberRef(msgspec.Struct, kw_only=True):
    team_id: str
    user_id: str | None = None
    user_email: str | None = None


class MemberUpdate(MemberRef, kw_only=True):
    role: str | None = None
    budget_id: str | UnsetType | None = UNSET  # a budget object bounding the member within the team
    max_budget_in_team: float | UnsetType | None = UNSET  # LiteLLM's: the member's own budget object


def team_manager(principal: Principal, team: TeamRecord, service: TeamService) -> None:
    """A proxy admin, an admin of this team or of its organization; 403 for any other valid key."""
    if principal.is_admin or service.orgs.manages(principal, team):
        return
    member = team.member(principal.user.user_id) if principal.user is not None else None
    if member is None or member.role != TEAM_ROLE_ADMIN:
        raise forbidden(f"only a proxy admin or an admin of team {team.team_id!r} may change its members", "team_id")


def member_budget_id(team_id: str, user_id: str) -> str:
    """The id of the budget object `max_budget_in_team` keeps for one member of one team."""
    return f"team-{team_id}-member-{user_id}"


async def member_budget(edge: Edge, service: TeamService, team: TeamRecord, user_id: str, amount: float | None) -> str | None:
    """`max_budget_in_team`, as LiteLLM keeps it: a budget object of the member's own (None: no
    budget within the team)."""
    if amount is None:
        return None
    if not math.isfinite(amount) or amount < 0:
        raise bad_param("max_budget_in_team", f"`max_budget_in_team` must be a number, 0 or more; got {amount}")
    budget_id = member_budget_id(team.team_id, user_id)

    def change(r: BudgetRecord | None) -> BudgetRecord:
        now = time.time()
        if r is None:
            return BudgetRecord(budget_id=budget_id, max_budget=amount, created_at=now, updated_at=now)
        return r if r.max_budget == amount else msgspec.structs.replace(r, max_budget=amount, updated_at=now)

    await service.store.upsert(edge.identity.budgets, budget_key(budget_id), change, f"budget {budget_id!r}")
    return budget_id


def build_member_routes(edge: Edge, service: TeamService) -> list:
    def member_id(user_id: str | None, user_email: str | None) -> str:
        return member_refs.member_id(edge.identity, user_id, user_email)

    def named(team: TeamRecord, ref: MemberRef) -> str:
        """The user id of the member `ref` names (by id, or by e-mail address); 404 when it is no
        member of the team."""
        user_id = member_refs.listed_member_id(edge.identity, team.members_with_roles, ref.user_id, ref.user_email)
        if not user_id or team.member(user_id) is None:
            raise not_found(f"member {ref.user_id or ref.user_email!r} of team {team.team_id!r}")
        return user_id

    @post("/team/member_add", status_code=200)
    async def member_add(request: Request) -> Response:
        principal = caller(edge, request)
        params = decode_body(await request.body(), MemberAdd)
        team_manager(principal, service.find(params.team_id), service)
        given = params.member if isinstance(params.member, list) else [params.member]
        for m in given:
            if m.role not in TEAM_ROLES:
                raise bad_param("member", f"a member's role must be `admin` or `user`; got {m.role!r}")
            known_budget(edge, {"budget_id": m.budget_id})
        members = [msgspec.structs.replace(m, user_id=member_id(m.user_id, m.user_email)) for m in given]
        if params.max_budget_in_team is not None:
            team = service.find(params.team_id)
            members = [
                msgspec.structs.replace(
                    m, budget_id=await member_budget(edge, service, team, m.user_id or "", params.max_budget_in_team)
                )
                for m in members
            ]
        # The users first (created if new), so a team never lists a member with no user.
        users = [await service.join(m.user_id or "", params.team_id, m.user_email) for m in members]
        members = [
            msgspec.structs.replace(m, user_email=m.user_email or u.user_email) for m, u in zip(members, users, strict=True)
        ]

        def change(r: TeamRecord) -> TeamRecord:
            new = [m for m in dict((m.user_id, m) for m in members).values() if r.member(m.user_id) is None]
            return (
                msgspec.structs.replace(r, members_with_roles=[*r.members_with_roles, *new], updated_at=time.time()) if new else r
            )

        record = await service.change(params.team_id, change)
        return json_response({**render(record), "updated_users": [render(u) for u in users]})

    @post("/team/member_delete", status_code=200)
    async def member_delete(request: Request) -> Response:
        principal = caller(edge, request)
        params = decode_body(await request.body(), MemberRef)
        team = service.find(params.team_id)
        team_manager(principal, team, service)
        record = await service.remove_member(params.team_id, named(team, params))
        return json_response(render(record))

    @post("/team/member_update", status_code=200)
    async def member_update(request: Request) -> Response:
        principal = caller(edge, request)
        params = decode_body(await request.body(), MemberUpdate)
        if params.role is not None and params.role not in TEAM_ROLES:
            raise bad_param("role", f"`role` must be `admin` or `user`; got {params.role!r}")
        team = service.find(params.team_id)
        team_manager(principal, team, service)
        user_id = named(team, params)
        changes: dict[str, Any] = {} if params.role is None else {"role": params.role}
        if params.budget_id is not UNSET:
            known_budget(edge, {"budget_id": params.budget_id})
            changes["budget_id"] = params.budget_id
        if params.max_budget_in_team is not UNSET:
            changes["budget_id"] = await member_budget(edge, service, team, user_id, params.max_budget_in_team)

        def change(r: TeamRecord) -> TeamRecord:
            if not changes:
                return r
            members = [msgspec.structs.replace(m, **changes) if m.user_id == user_id else m for m in r.members_with_roles]
            return (
                msgspec.structs.replace(r, members_with_roles=members, updated_at=time.time())
                if members != r.members_with_roles
                else r
            )

        record = await service.change(params.team_id, change)
        member = record.member(user_id)
        budget = edge.identity.budget(member.budget_id) if member is not None else None
        return json_response(
            {
                "team_id": params.team_id,
                "user_id": user_id,
                "role": member.role if member else None,
                "budget_id": member.budget_id if member else None,
                "max_budget_in_team": budget.max_budget if budget is not None else None,
                "data": render(record),
            }
        )

    return [member_add, member_delete, member_update]
