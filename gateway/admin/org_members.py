"""`/organization/member_add`, `/organization/member_delete`, `/organization/member_update`: who
belongs to an organization, and as what (`org_admin`, `internal_user`, `internal_user_viewer`).

A proxy admin, or an admin of that organization, may change its members. A member named by an
e-mail address is the existing user with that address, or a new user; every write is a
compare-and-set, so concurrent calls naming one new member all succeed and one user exists."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
from litestar import Request, Response, delete, patch, post
from msgspec import UNSET, UnsetType

from gateway.admin import member_refs
from gateway.admin.common import caller, json_response, render
from gateway.admin.organizations import OrgService, org_admin_of
from gateway.admin.params import bad_param, decode_body
from gateway.admin.store import not_found
from gateway.auth import Principal, forbidden
from gateway.edge import Edge
from llmgw.contracts import ORG_ROLES, ROLE_INTERNAL_USER, OrganizationRecord, OrgMember, UserRecord, kv_key


class OrgMemberGiven(msgspec.Struct, kw_only=True):
    role: str = ROLE_INTERNAL_USER
    user_id: str | None = None
    user_email: str | None = None


class OrgMemberAdd(msgspec.Struct, kw_only=True):
    organization_id: str
    member: OrgMemberGiven | list[OrgMemberGiven]
    max_budget_in_organization: float | None = None


class OrgMemberRef(msgspec.Struct, kw_only=True):
    organization_id: str
    user_id: str | None = None
    user_email: str | None = None


class OrgMemberUpdate(OrgMemberRef, kw_only=True):
    role: str | None = None
    max_budget_in_organization: float | UnsetType | None = UNSET


def org_manager(principal: Principal, org: OrganizationRecord) -> None:
    """A proxy admin or an admin of this organization; 403 for any other valid key."""
    if not principal.is_admin and not org_admin_of(principal, org):
        raise forbidden(
            f"only a proxy admin or an admin of organization {org.organization_id!r} may change its members", "organization_id"
        )


def check_role(role: str, param: str) -> None:
    if role not in ORG_ROLES:
        raise bad_param(param, f"an organization member's role must be one of {', '.join(ORG_ROLES)}; got {role!r}")


def membership(org: OrganizationRecord, m: OrgMember) -> dict:
    return {"organization_id": org.organization_id, **render(m)}


def build_org_member_routes(edge: Edge, service: OrgService) -> list:
    store = service.store
    orgs = lambda: edge.identity.orgs  # noqa: E731 - the view exists once the edge started

    def member_id(user_id: str | None, user_email: str | None) -> str:
        return member_refs.member_id(edge.identity, user_id, user_email)

    def named(org: OrganizationRecord, ref: OrgMemberRef) -> str:
        """The user id of the member `ref` names; 404 when it is no member of the organization."""
        user_id = member_refs.listed_member_id(edge.identity, org.members, ref.user_id, ref.user_email)
        if not user_id or org.member(user_id) is None:
            raise not_found(f"member {ref.user_id or ref.user_email!r} of organization {org.organization_id!r}")
        return user_id

    async def ensure_user(user_id: str, email: str | None) -> UserRecord:
        """The member's user, created if new (create-or-get)."""

        def change(r: UserRecord | None) -> UserRecord:
            if r is not None:
                return r
            now = time.time()
            return UserRecord(user_id=user_id, user_email=email, created_at=now, updated_at=now)

        return await store.upsert(edge.identity.users, kv_key(user_id), change, f"user {user_id!r}")

    async def change_org(ident: str, change: Callable[[OrganizationRecord], OrganizationRecord]) -> OrganizationRecord:
        return await store.modify(orgs(), kv_key(ident), change, f"organization {ident!r}")

    @post("/organization/member_add", status_code=200)
    async def member_add(request: Request) -> Response:
        principal = caller(edge, request)
        params = decode_body(await request.body(), OrgMemberAdd)
        if params.max_budget_in_organization is not None:
            raise bad_param(
                "max_budget_in_organization",
                "budgets of a member within an organization are not supported; set the user's budget",
            )
        org_manager(principal, service.find(params.organization_id))
        given = params.member if isinstance(params.member, list) else [params.member]
        for m in given:
            check_role(m.role, "member")
        now = time.time()
        members = [
            OrgMember(user_id=member_id(m.user_id, m.user_email), user_email=m.user_email, user_role=m.role, created_at=now)
            for m in given
        ]
        # The users first (created if new), so an organization never lists a member with no user.
        users = [await ensure_user(m.user_id, m.user_email) for m in members]
        members = [
            msgspec.structs.replace(m, user_email=m.user_email or u.user_email) for m, u in zip(members, users, strict=True)
        ]

        def change(r: OrganizationRecord) -> OrganizationRecord:
            new = [m for m in {m.user_id: m for m in members}.values() if r.member(m.user_id) is None]
            return msgspec.structs.replace(r, members=[*r.members, *new], updated_at=time.time()) if new else r

        record = await change_org(params.organization_id, change)
        return json_response({
            "organization_id": record.organization_id,
            "updated_users": [render(u) for u in users],
            "updated_organization_memberships": [membership(record, record.member(m.user_id) or m) for m in members],
        })  # fmt: skip

    async def member_delete(request: Request) -> Response:
        principal = caller(edge, request)
        params = decode_body(await request.body(), OrgMemberRef)
        org = service.find(params.organization_id)
        org_manager(principal, org)
        user_id = named(org, params)
        removed = org.member(user_id)

        def change(r: OrganizationRecord) -> OrganizationRecord:
            left = [m for m in r.members if m.user_id != user_id]
            return msgspec.structs.replace(r, members=left, updated_at=time.time()) if len(left) != len(r.members) else r

        record = await change_org(params.organization_id, change)
        return json_response(membership(record, removed) if removed is not None else {"organization_id": record.organization_id})

    async def member_update(request: Request) -> Response:
        principal = caller(edge, request)
        params = decode_body(await request.body(), OrgMemberUpdate)
        if params.max_budget_in_organization is not UNSET:
            raise bad_param(
                "max_budget_in_organization",
                "budgets of a member within an organization are not supported; set the user's budget",
            )
        if params.role is not None:
            check_role(params.role, "role")
        org = service.find(params.organization_id)
        org_manager(principal, org)
        user_id = named(org, params)
        role = params.role

        def change(r: OrganizationRecord) -> OrganizationRecord:
            if role is None:
                return r
            members = [msgspec.structs.replace(m, user_role=role) if m.user_id == user_id else m for m in r.members]
            return msgspec.structs.replace(r, members=members, updated_at=time.time()) if members != r.members else r

        record = await change_org(params.organization_id, change)
        member = record.member(user_id)
        return json_response(membership(record, member) if member is not None else {"organization_id": record.organization_id})

    return [
        member_add,
        delete("/organization/member_delete", status_code=200)(member_delete),
        post("/organization/member_delete", status_code=200, name="organization_member_delete_post")(member_delete),
        patch("/organization/member_update", status_code=200)(member_update),
        post("/organization/member_update", status_code=200, name="organization_member_update_post")(member_update),
    ]
