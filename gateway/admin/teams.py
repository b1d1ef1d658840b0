"""`/team/*`: teams, their members, and the models and budgets that bound their keys."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from msgspec import UNSET, UnsetType

from gateway.admin.common import admin, json_response, render, with_spend
from gateway.admin.keys import KeyService, given
from gateway.admin.params import LimitParams, bad_param, decode_body, record_values
from gateway.admin.store import not_found
from gateway.edge import Edge
from llmgw.contracts import LedgerKind, TeamMember, TeamRecord, UserRecord, kv_key


class TeamParams(LimitParams, kw_only=True):
    team_alias: str | UnsetType | None = UNSET
    models: list[str] | UnsetType | None = UNSET
    members_with_roles: list[TeamMember] | UnsetType | None = UNSET
    metadata: dict | UnsetType | None = UNSET
    system_prompt: str | UnsetType | None = UNSET
    blocked: bool | UnsetType | None = UNSET


class NewTeamParams(TeamParams, kw_only=True):
    team_id: str | None = None


class UpdateTeamParams(TeamParams, kw_only=True):
    team_id: str


class DeleteTeams(msgspec.Struct, kw_only=True):
    team_ids: list[str]


class MemberAdd(msgspec.Struct, kw_only=True):
    team_id: str
    member: TeamMember | list[TeamMember]


def team_fields(values: dict[str, Any]) -> dict[str, Any]:
    out = record_values(values, TeamRecord)
    for m in out.get("members_with_roles", []):
        if m.role not in ("admin", "user"):
            raise bad_param("members_with_roles", f"a member's role must be `admin` or `user`; got {m.role!r}")
    return out


def build_team_routes(edge: Edge, keys: KeyService) -> list:
    store = keys.store
    teams = lambda: edge.identity.teams  # noqa: E731 - the view exists once the edge started

    def find(team_id: str) -> TeamRecord:
        record = edge.identity.team(team_id)
        if record is None:
            raise not_found(f"team {team_id!r}")
        return record

    async def join(user_id: str, team_id: str) -> None:
        """Record the team on the member's user (creating the user if it is new)."""
        users = edge.identity.users
        if edge.identity.user(user_id) is None:
            now = time.time()
            await store.create(
                users,
                kv_key(user_id),
                UserRecord(user_id=user_id, teams=[team_id], created_at=now, updated_at=now),
                f"user {user_id!r}",
            )
        else:
            await store.modify(
                users,
                kv_key(user_id),
                lambda r: (
                    r if team_id in r.teams else msgspec.structs.replace(r, teams=[*r.teams, team_id], updated_at=time.time())
                ),
                f"user {user_id!r}",
            )

    @post("/team/new", status_code=200)
    async def new(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), NewTeamParams)
        team_id = params.team_id or str(uuid.uuid4())
        now = time.time()
        values = given(params)
        values.pop("team_id", None)
        record = TeamRecord(team_id=team_id, created_at=now, updated_at=now, **team_fields(values))
        await store.create(teams(), kv_key(team_id), record, f"team {team_id!r}")
        for m in record.members_with_roles:
            if m.user_id:
                await join(m.user_id, team_id)
        return json_response(render(record))

    @get("/team/info")
    async def info(request: Request, team_id: str) -> Response:
        admin(edge, request)
        record = find(team_id)
        team_keys = [keys.info(keys.keys.items[t]) for t in keys.tokens_where(team_id=team_id)]
        info = with_spend(edge, render(record), LedgerKind.TEAM, team_id, record)
        return json_response({"team_id": team_id, "team_info": info, "keys": team_keys})

    async def change(team_id: str, fields: dict[str, Any]) -> TeamRecord:
        if kv_key(team_id) not in teams().items:
            # A team known only from the config file becomes a stored team on its first change.
            base = find(team_id)
            await store.create(teams(), kv_key(team_id), base, f"team {team_id!r}")
        return await store.modify(
            teams(),
            kv_key(team_id),
            lambda r: msgspec.structs.replace(r, updated_at=time.time(), **fields),
            f"team {team_id!r}",
        )

    @post("/team/update", status_code=200)
    async def update(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), UpdateTeamParams)
        values = given(params)
        values.pop("team_id")
        record = await change(params.team_id, team_fields(values))
        return json_response({"team_id": params.team_id, "data": render(record)})

    @post("/team/member_add", status_code=200)
    async def member_add(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), MemberAdd)
        new_members = params.member if isinstance(params.member, list) else [params.member]
        if any(not (m.user_id or m.user_email) for m in new_members):
            raise bad_param("member", "each member needs a `user_id` (or `user_email`)")
        current = find(params.team_id)
        known = {(m.user_id, m.user_email) for m in current.members_with_roles}
        members = [*current.members_with_roles, *(m for m in new_members if (m.user_id, m.user_email) not in known)]
        record = await change(params.team_id, team_fields({"members_with_roles": members}))
        for m in new_members:
            if m.user_id:
                await join(m.user_id, params.team_id)
        return json_response(render(record))

    @post("/team/delete", status_code=200)
    async def delete(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), DeleteTeams)
        for team_id in params.team_ids:
            if kv_key(team_id) not in teams().items:
                raise not_found(f"team {team_id!r}")
        for team_id in params.team_ids:
            await keys.delete(keys.tokens_where(team_id=team_id))
            await store.delete(teams(), kv_key(team_id))
        return json_response({"deleted_teams": params.team_ids})

    return [new, info, update, member_add, delete]
