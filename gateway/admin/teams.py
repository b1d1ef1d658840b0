"""`/team/*`: teams, the models and budgets that bound their keys, and blocking them
(their members: gateway/admin/team_members.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from msgspec import UNSET, UnsetType

from gateway.admin.common import admin, caller, json_response, known_budget, render, with_spend
from gateway.admin.keys import KeyService, given
from gateway.admin.organizations import OrgService
from gateway.admin.params import LimitParams, bad_param, decode_body, record_values
from gateway.admin.store import not_found
from gateway.auth import Principal, forbidden
from gateway.edge import Edge
from gateway.enforced_params import fold_enforced_params
from llmgw.contracts import TEAM_ROLE_ADMIN, TEAM_ROLES, LedgerKind, TeamMember, TeamRecord, UserRecord, kv_key


class TeamParams(LimitParams, kw_only=True):
    team_alias: str | UnsetType | None = UNSET
    organization_id: str | UnsetType | None = UNSET
    models: list[str] | UnsetType | None = UNSET
    model_aliases: dict[str, str] | UnsetType | None = UNSET
    members_with_roles: list[TeamMember] | UnsetType | None = UNSET
    metadata: dict | UnsetType | None = UNSET
    system_prompt: str | UnsetType | None = UNSET
    blocked: bool | UnsetType | None = UNSET
    enforced_params: list[str] | UnsetType | None = UNSET  # kept in metadata (gateway/enforced_params.py)


class NewTeamParams(TeamParams, kw_only=True):
    team_id: str | None = None


class UpdateTeamParams(TeamParams, kw_only=True):
    team_id: str


class DeleteTeams(msgspec.Struct, kw_only=True):
    team_ids: list[str]


class TeamRef(msgspec.Struct, kw_only=True):
    team_id: str


class TeamModels(msgspec.Struct, kw_only=True):
    team_id: str
    models: list[str]


def team_fields(values: dict[str, Any]) -> dict[str, Any]:
    out = record_values(values, TeamRecord)
    for m in out.get("members_with_roles", []):
        if m.role not in TEAM_ROLES:
            raise bad_param("members_with_roles", f"a member's role must be `admin` or `user`; got {m.role!r}")
    return out


def may_read_team(principal: Principal, team: TeamRecord) -> bool:
    """A team is the caller's to read when it is the key's team, the key's user is on it, or the
    caller reads every record."""
    if principal.views_all:
        return True
    key, user = principal.key, principal.user
    if key is not None and key.team_id == team.team_id:
        return True
    return user is not None and (team.team_id in user.teams or team.member(user.user_id) is not None)


def on_team(user_id: str, team: TeamRecord) -> bool:
    return team.member(user_id) is not None


class TeamService:
    """Team operations shared by /team/* and /team/member_*."""

    def __init__(self, edge: Edge, keys: KeyService) -> None:
        self.edge = edge
        self.keys = keys
        self.store = keys.store
        self.orgs = OrgService(edge, keys.store)

    def find(self, team_id: str) -> TeamRecord:
        record = self.edge.identity.team(team_id)
        if record is None:
            raise not_found(f"team {team_id!r}")
        return record

    async def change(self, team_id: str, change: Callable[[TeamRecord], TeamRecord]) -> TeamRecord:
        """Compare-and-set on the team; a team known only from the config file becomes a stored
        team on its first change (a stored team deleted meanwhile stays deleted: 404)."""
        base = self.find(team_id)
        configured = self.edge.identity.default_teams.get(team_id)

        def apply(stored: TeamRecord | None) -> TeamRecord:
            if stored is None:
                if configured is None:
                    raise not_found(f"team {team_id!r}")
                stored = base
            new = change(stored)
            if (new.organization_id, new.models, new.max_budget) != (stored.organization_id, stored.models, stored.max_budget):
                self.orgs.bound_team(new)  # its organization's models and budget bound it
            return new

        return await self.store.upsert(self.edge.identity.teams, kv_key(team_id), apply, f"team {team_id!r}")

    async def set_fields(self, team_id: str, fields: dict[str, Any]) -> TeamRecord:
        return await self.change(team_id, lambda r: msgspec.structs.replace(r, updated_at=time.time(), **fields))

    async def join(self, user_id: str, team_id: str, email: str | None = None) -> UserRecord:
        """Record the team on the member's user, creating the user if it is new (create-or-get:
        concurrent calls naming one new member all succeed and one user exists)."""

        def change(r: UserRecord | None) -> UserRecord:
            now = time.time()
            if r is None:
                return UserRecord(user_id=user_id, user_email=email, teams=[team_id], created_at=now, updated_at=now)
            if team_id in r.teams:
                return r
            return msgspec.structs.replace(r, teams=[*r.teams, team_id], updated_at=now)

        return await self.store.upsert(self.edge.identity.users, kv_key(user_id), change, f"user {user_id!r}")

    async def leave(self, user_id: str, team_id: str) -> None:
        if self.edge.identity.user(user_id) is None:
            return

        def change(r: UserRecord) -> UserRecord:
            if team_id not in r.teams:
                return r
            return msgspec.structs.replace(r, teams=[t for t in r.teams if t != team_id], updated_at=time.time())

        await self.store.modify(self.edge.identity.users, kv_key(user_id), change, f"user {user_id!r}")

    async def set_member(self, team_id: str, member: TeamMember) -> TeamRecord:
        """The user on the team with this role: the user first (created if new, as member_add
        does), then the team's member list (added, or its role changed)."""
        user_id = member.user_id or ""
        await self.join(user_id, team_id, member.user_email)

        def change(r: TeamRecord) -> TeamRecord:
            current = r.member(user_id)
            if current is not None and current.role == member.role:
                return r
            others = [m for m in r.members_with_roles if m.user_id != user_id]
            placed = member if current is None else msgspec.structs.replace(current, role=member.role)
            return msgspec.structs.replace(r, members_with_roles=[*others, placed], updated_at=time.time())

        return await self.change(team_id, change)

    async def remove_member(self, team_id: str, user_id: str) -> TeamRecord:
        """The user off the team: off its member list, then the team off the user's record."""

        def change(r: TeamRecord) -> TeamRecord:
            left = [m for m in r.members_with_roles if m.user_id != user_id]
            if len(left) == len(r.members_with_roles):
                return r
            return msgspec.structs.replace(r, members_with_roles=left, updated_at=time.time())

        record = await self.change(team_id, change)
        await self.leave(user_id, team_id)
        return record

    def info(self, record: TeamRecord) -> dict[str, Any]:
        return with_spend(self.edge, render(record), LedgerKind.TEAM, record.team_id, record)


def build_team_routes(edge: Edge, keys: KeyService, service: TeamService) -> list:
    teams = lambda: edge.identity.teams  # noqa: E731 - the view exists once the edge started
    find = service.find

    @post("/team/new", status_code=200)
    async def new(request: Request) -> Response:
        principal = caller(edge, request)
        params = decode_body(await request.body(), NewTeamParams)
        # A proxy admin, or an admin of the organization the team is made in.
        service.orgs.creator(principal, params.organization_id or None)
        team_id = params.team_id or str(uuid.uuid4())
        now = time.time()
        values = fold_enforced_params(given(params), {})
        values.pop("team_id", None)
        known_budget(edge, values)
        record = TeamRecord(team_id=team_id, created_at=now, updated_at=now, **team_fields(values))
        creator = principal.user
        if creator is not None and record.member(creator.user_id) is None:
            # A team created by a user lists its creator as the team's admin.
            member = TeamMember(user_id=creator.user_id, user_email=creator.user_email, role=TEAM_ROLE_ADMIN)
            record = msgspec.structs.replace(record, members_with_roles=[*record.members_with_roles, member])
        service.orgs.bound_team(record)
        await service.store.create(teams(), kv_key(team_id), record, f"team {team_id!r}")
        for m in record.members_with_roles:
            if m.user_id:
                await service.join(m.user_id, team_id, m.user_email)
        return json_response(render(record))

    @get("/team/info")
    async def info(request: Request, team_id: str | None = None) -> Response:
        principal = caller(edge, request)
        if not team_id:
            team_id = principal.key.team_id if principal.key is not None else None
            if not team_id:
                raise bad_param("team_id", "`team_id` is required")
        record = find(team_id)
        if not (may_read_team(principal, record) or service.orgs.manages(principal, record)):
            raise forbidden("this key may only look up its own team or a team its user is a member of", "team_id")
        team_keys = [keys.info(keys.keys.items[t]) for t in keys.tokens_where(team_id=team_id)]
        return json_response({"team_id": team_id, "team_info": service.info(record), "keys": team_keys})

    @get("/team/list")
    async def list_teams(request: Request, user_id: str | None = None) -> Response:
        """Every team (for admins and admin viewers), or the teams the caller may read."""
        principal = caller(edge, request)
        records = {**{t.team_id: t for t in edge.identity.default_teams.values()}}
        records.update({t.team_id: t for t in teams().items.values()})
        shown = [
            r
            for r in sorted(records.values(), key=lambda r: (r.created_at, r.team_id))
            if (may_read_team(principal, r) or service.orgs.manages(principal, r)) and (user_id is None or on_team(user_id, r))
        ]
        return json_response([service.info(r) for r in shown])

    @post("/team/update", status_code=200)
    async def update(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), UpdateTeamParams)
        values = fold_enforced_params(given(params), find(params.team_id).metadata)
        values.pop("team_id")
        known_budget(edge, values)
        record = await service.set_fields(params.team_id, team_fields(values))
        return json_response({"team_id": params.team_id, "data": render(record)})

    @post("/team/model/add", status_code=200)
    async def model_add(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), TeamModels)
        if not params.models:
            raise bad_param("models", "name at least one model to add")

        def change(r: TeamRecord) -> TeamRecord:
            added = [m for m in dict.fromkeys(params.models) if m not in r.models]
            return msgspec.structs.replace(r, models=[*r.models, *added], updated_at=time.time()) if added else r

        record = await service.change(params.team_id, change)
        return json_response({"team_id": params.team_id, "data": render(record)})

    @post("/team/model/delete", status_code=200)
    async def model_delete(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), TeamModels)
        if not params.models:
            raise bad_param("models", "name at least one model to remove")

        def change(r: TeamRecord) -> TeamRecord:
            left = [m for m in r.models if m not in params.models]
            if r.models and not left:
                # An empty list means every model: removing the last one must not widen access.
                raise bad_param(
                    "models",
                    "this would remove every model of the team, and no list means every model; give the team"
                    " `models: []` with /team/update to mean that",
                )
            return msgspec.structs.replace(r, models=left, updated_at=time.time()) if left != r.models else r

        record = await service.change(params.team_id, change)
        return json_response({"team_id": params.team_id, "data": render(record)})

    async def set_blocked(request: Request, blocked: bool) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), TeamRef)
        record = await service.set_fields(params.team_id, {"blocked": blocked})
        return json_response(render(record))

    @post("/team/block", status_code=200)
    async def block(request: Request) -> Response:
        """Refuse every key of the team (the keys stay as they are)."""
        return await set_blocked(request, True)

    @post("/team/unblock", status_code=200)
    async def unblock(request: Request) -> Response:
        return await set_blocked(request, False)

    @post("/team/delete", status_code=200)
    async def delete(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), DeleteTeams)
        for team_id in params.team_ids:
            if kv_key(team_id) not in teams().items:
                raise not_found(f"team {team_id!r}")
        for team_id in params.team_ids:
            await keys.delete(keys.tokens_where(team_id=team_id))
            await service.store.delete(teams(), kv_key(team_id))
        return json_response({"deleted_teams": params.team_ids})

    return [new, info, list_teams, update, model_add, model_delete, block, unblock, delete]
