"""`/organization/*`: organizations (LiteLLM's), which own teams and bound their models and budgets
(their members: gateway/admin/org_members.py).

An organization's `models` bound its teams': a team may not be given a model its organization
lacks, and its keys may call only what the organization allows. Its budget (`max_budget`,
`budget_duration`, ... given on the organization as LiteLLM's `/organization/new` takes them, or
those of the budget object its `budget_id` names, gateway/budget_objects.py) is a ledger of its own
that every request of its teams' keys reserves against, next to the key's, the user's and the
team's.

Proxy admins create, change and delete organizations; an organization's admins (`org_admin`)
manage its members and create teams in it; its members, and keys of its teams, may read it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from msgspec import UNSET, UnsetType

from gateway.admin.common import admin, caller, json_response, known_budget, render, with_spend
from gateway.admin.keys import KeyService, given
from gateway.admin.params import LimitParams, bad_param, decode_body, record_values
from gateway.admin.store import RecordStore, not_found
from gateway.auth import Principal, forbidden
from gateway.budget_objects import bounded
from gateway.edge import Edge
from llmgw.contracts import ORG_ROLE_ADMIN, LedgerKind, OrganizationRecord, TeamRecord, kv_key

BUDGET_FIELDS = ("max_budget", "soft_budget", "budget_duration", "tpm_limit", "rpm_limit", "max_parallel_requests")


class OrgParams(LimitParams, kw_only=True):
    organization_alias: str | UnsetType | None = UNSET
    models: list[str] | UnsetType | None = UNSET
    metadata: dict | UnsetType | None = UNSET
    blocked: bool | UnsetType | None = UNSET


class NewOrgParams(OrgParams, kw_only=True):
    organization_id: str | None = None


class UpdateOrgParams(OrgParams, kw_only=True):
    organization_id: str


class DeleteOrgs(msgspec.Struct, kw_only=True):
    organization_ids: list[str]


class OrgsInfo(msgspec.Struct, kw_only=True):
    organizations: list[str]


def org_admin_of(principal: Principal, org: OrganizationRecord) -> bool:
    user = principal.user
    member = org.member(user.user_id) if user is not None else None
    return member is not None and member.user_role == ORG_ROLE_ADMIN


def may_read_org(principal: Principal, org: OrganizationRecord) -> bool:
    """A reader of every record, a member of the organization, or a key of one of its teams."""
    if principal.views_all:
        return True
    if principal.team is not None and principal.team.organization_id == org.organization_id:
        return True
    return principal.user is not None and org.member(principal.user.user_id) is not None


class OrgService:
    """Organization look-ups and the bounds they put on teams (used by /team/*)."""

    def __init__(self, edge: Edge, store: RecordStore) -> None:
        self.edge = edge
        self.store = store

    def find(self, organization_id: str) -> OrganizationRecord:
        record = self.edge.identity.organization(organization_id)
        if record is None:
            raise not_found(f"organization {organization_id!r}")
        return record

    def teams_of(self, organization_id: str) -> list[TeamRecord]:
        teams = {t.team_id: t for t in self.edge.identity.default_teams.values()}
        teams.update({t.team_id: t for t in self.edge.identity.teams.items.values()})
        return sorted((t for t in teams.values() if t.organization_id == organization_id), key=lambda t: t.created_at)

    def bound_team(self, team: TeamRecord) -> None:
        """400 when a team asks for more than its organization has: a model it lacks, a budget above its own."""
        if not team.organization_id:
            return
        org = self.edge.identity.organization(team.organization_id)
        if org is None:
            raise bad_param("organization_id", f"organization {team.organization_id!r} not found")
        if org.models:
            lacking = [m for m in team.models if not self.edge.access.permits(org.models, m)]
            if lacking:
                raise bad_param(
                    "models",
                    f"organization {org.organization_id!r} does not have model(s) {', '.join(map(repr, lacking))};"
                    f" its models: {', '.join(org.models)}",
                )
        limit = bounded(org, self.edge.identity.budget(org.budget_id)).max_budget
        if limit is not None and team.max_budget is not None and team.max_budget > limit:
            raise bad_param(
                "max_budget",
                f"a team's max_budget ({team.max_budget}) may not exceed its organization's ({limit})",
            )

    def manages(self, principal: Principal, team: TeamRecord) -> bool:
        """Whether the caller is an admin (`org_admin`) of the team's organization."""
        org = self.edge.identity.organization(team.organization_id)
        return org is not None and org_admin_of(principal, org)

    def creator(self, principal: Principal, organization_id: str | None) -> None:
        """Who may create a team: a proxy admin, or an admin of the organization it is created in (else 403)."""
        if principal.is_admin:
            return
        org = self.edge.identity.organization(organization_id) if organization_id else None
        if org is None or not org_admin_of(principal, org):
            raise forbidden(
                "Creating a team needs the master key, a key of a user with role `proxy_admin`, or the key of an"
                " admin (`org_admin`) of the organization given as `organization_id`; this key's role is"
                f" `{principal.role}`.",
                "organization_id",
            )

    def info(self, record: OrganizationRecord, with_teams: bool = True) -> dict[str, Any]:
        limits = bounded(record, self.edge.identity.budget(record.budget_id))  # its budget object's, if named
        out = with_spend(self.edge, render(record), LedgerKind.ORG, record.organization_id, limits)
        out["litellm_budget_table"] = {f: getattr(limits, f) for f in BUDGET_FIELDS} | {
            "budget_id": record.budget_id,
            "model_max_budget": limits.model_max_budget,
        }
        if with_teams:
            out["teams"] = [render(t) for t in self.teams_of(record.organization_id)]
        return out


def org_fields(edge: Edge, values: dict[str, Any]) -> dict[str, Any]:
    known_budget(edge, values)
    if values.get("model_max_budget"):
        raise bad_param(
            "model_max_budget", "budgets per model are a key's (`model_max_budget` on /key/generate), not an organization's"
        )
    return record_values(values, OrganizationRecord)


def build_org_routes(edge: Edge, keys: KeyService, service: OrgService) -> list:
    orgs = lambda: edge.identity.orgs  # noqa: E731 - the view exists once the edge started
    store = service.store

    @post("/organization/new", status_code=200)
    async def new(request: Request) -> Response:
        principal = admin(edge, request)
        params = decode_body(await request.body(), NewOrgParams)
        if not params.organization_alias:
            raise bad_param("organization_alias", "`organization_alias` is required")
        organization_id = params.organization_id or str(uuid.uuid4())
        now = time.time()
        values = given(params)
        values.pop("organization_id", None)
        record = OrganizationRecord(
            organization_id=organization_id,
            created_by=principal.caller.user_id or principal.caller.key_alias,
            created_at=now,
            updated_at=now,
            **org_fields(edge, values),
        )
        await store.create(orgs(), kv_key(organization_id), record, f"organization {organization_id!r}")
        return json_response(service.info(record, with_teams=False))

    async def info_of(principal: Principal, organization_id: str) -> dict[str, Any]:
        record = service.find(organization_id)
        if not may_read_org(principal, record):
            raise forbidden("this key may only look up an organization its user is a member of", "organization_id")
        return service.info(record)

    @get("/organization/info")
    async def info(request: Request, organization_id: str | None = None) -> Response:
        principal = caller(edge, request)
        if not organization_id:
            team = principal.team
            organization_id = team.organization_id if team is not None else None
            if not organization_id:
                raise bad_param("organization_id", "`organization_id` is required")
        return json_response(await info_of(principal, organization_id))

    @post("/organization/info", status_code=200)
    async def info_many(request: Request) -> Response:
        """The older form: `{"organizations": [ids]}`, a list of records."""
        principal = caller(edge, request)
        params = decode_body(await request.body(), OrgsInfo)
        return json_response([await info_of(principal, o) for o in params.organizations])

    @get("/organization/list")
    async def list_orgs(request: Request) -> Response:
        """Every organization (for admins and admin viewers), or the ones the caller may read."""
        principal = caller(edge, request)
        shown = sorted(
            (r for r in orgs().items.values() if may_read_org(principal, r)), key=lambda r: (r.created_at, r.organization_id)
        )
        return json_response([service.info(r) for r in shown])

    async def update(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), UpdateOrgParams)
        values = given(params)
        values.pop("organization_id")
        fields = org_fields(edge, values)
        ident = params.organization_id
        service.find(ident)

        def change(r: OrganizationRecord) -> OrganizationRecord:
            return msgspec.structs.replace(r, updated_at=time.time(), **fields)

        record = await store.modify(orgs(), kv_key(ident), change, f"organization {ident!r}")
        return json_response(service.info(record))

    update_patch = patch("/organization/update", status_code=200)(update)
    update_post = post("/organization/update", status_code=200, name="organization_update_post")(update)

    async def remove(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), DeleteOrgs)
        records = [service.find(o) for o in params.organization_ids]
        for r in records:
            teams = service.teams_of(r.organization_id)
            if teams:
                raise bad_param(
                    "organization_ids",
                    f"organization {r.organization_id!r} still has teams ({', '.join(t.team_id for t in teams)}):"
                    " delete them, or move them out with /team/update `organization_id: null`, first",
                )
        for r in records:
            await store.delete(orgs(), kv_key(r.organization_id))
        return json_response([service.info(r, with_teams=False) for r in records])

    delete_route = delete("/organization/delete", status_code=200)(remove)
    delete_post = post("/organization/delete", status_code=200, name="organization_delete_post")(remove)

    return [new, info, info_many, list_orgs, update_patch, update_post, delete_route, delete_post]
