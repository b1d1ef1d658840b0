"""The OpenAPI entries of `/organization/*` and `/spend/tags` (merged into the document by
gateway/openapi.py). Request bodies are the Structs the handlers decode; answers are written out
as the handlers write them."""

from __future__ import annotations

from typing import Any

from gateway.admin.org_members import OrgMemberAdd, OrgMemberRef, OrgMemberUpdate
from gateway.admin.organizations import DeleteOrgs, NewOrgParams, OrgsInfo, UpdateOrgParams
from gateway.openapi_ops import ADMIN_ERRORS, admin_get, admin_post, body, errors, json_ok, query
from gateway.openapi_schemas import ANY_OBJECT, NULLABLE_STRING, obj

ORG_REQUEST_TYPES = (NewOrgParams, UpdateOrgParams, DeleteOrgs, OrgsInfo, OrgMemberAdd, OrgMemberRef, OrgMemberUpdate)

STRING = {"type": "string"}
DATE = {"type": "string", "format": "date"}


def _op(summary: str, request: str, answer: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["admin"],
        "requestBody": body(request),
        "responses": {**json_ok(answer), **errors(ADMIN_ERRORS)},
    }


def org_paths() -> dict[str, Any]:
    update = _op("Change an organization (proxy admins).", "UpdateOrgParams", "Organization")
    delete = _op("Delete organizations that have no teams (proxy admins).", "DeleteOrgs", "OrganizationList")
    member_delete = _op("Remove a member from an organization.", "OrgMemberRef", "OrgMembership")
    member_update = _op("Change a member's role in an organization.", "OrgMemberUpdate", "OrgMembership")
    info = admin_get(
        "An organization with its teams and members (its members and its teams' keys may read it).",
        [query("organization_id", STRING)],
        "Organization",
    )
    info["post"] = _op("Organizations by id (the older form).", "OrgsInfo", "OrganizationList")
    return {
        "/organization/new": admin_post(
            "Create an organization with its models and budget (proxy admins).", "NewOrgParams", "Organization"
        ),
        "/organization/info": info,
        "/organization/list": admin_get("The organizations this key may read.", [], "OrganizationList"),
        "/organization/update": {"patch": update, "post": update},
        "/organization/delete": {"delete": delete, "post": delete},
        "/organization/member_add": admin_post(
            "Add members to an organization (proxy admins and its `org_admin`s).", "OrgMemberAdd", "OrgMembersAdded"
        ),
        "/organization/member_delete": {"delete": member_delete, "post": member_delete},
        "/organization/member_update": {"patch": member_update, "post": member_update},
        "/spend/tags": admin_get(
            "Requests and spend per request tag (LiteLLM's shape).",
            [query("start_date", DATE), query("end_date", DATE)],
            "SpendTags",
        ),
    }


_MEMBERSHIP = obj(["organization_id", "user_id", "user_role"], organization_id=STRING, user_id=STRING, user_role=STRING)

ORG_RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Organization": obj(
        ["organization_id", "models", "members", "spend"],
        organization_id=STRING,
        organization_alias=NULLABLE_STRING,
        models={"type": "array", "items": STRING},
        members={"type": "array", "items": ANY_OBJECT},
        teams={"type": "array", "items": ANY_OBJECT},
        spend={"type": "number"},
        litellm_budget_table=ANY_OBJECT,
    ),
    "OrganizationList": {"type": "array", "items": obj(["organization_id"], organization_id=STRING)},
    "OrgMembership": obj(["organization_id"], organization_id=STRING, user_id=STRING, user_role=STRING),
    "OrgMembersAdded": obj(
        ["organization_id", "updated_users", "updated_organization_memberships"],
        organization_id=STRING,
        updated_users={"type": "array", "items": ANY_OBJECT},
        updated_organization_memberships={"type": "array", "items": _MEMBERSHIP},
    ),
    "SpendTags": {
        "type": "array",
        "items": obj(
            ["individual_request_tag", "log_count", "total_spend"],
            individual_request_tag=STRING,
            log_count={"type": "integer"},
            total_spend={"type": "number"},
        ),
    },
}
