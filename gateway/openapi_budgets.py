"""The OpenAPI entries of end users (`/end_user/*` and their `/customer/*` aliases) and budget
objects (`/budget/*`), merged into the document by gateway/openapi.py. Request bodies are the
Structs the handlers decode; answers are written out as the handlers write them."""

from __future__ import annotations

from typing import Any

from gateway.admin.budget_objects import BudgetIds, BudgetParams, BudgetRef
from gateway.admin.end_users import EndUserIds, NewEndUser
from gateway.openapi_ops import ADMIN_ERRORS, admin_get, admin_post, body, errors, json_ok, query
from gateway.openapi_schemas import ANY_OBJECT, NULLABLE_STRING, obj, ref

BUDGET_REQUEST_TYPES = (NewEndUser, EndUserIds, BudgetParams, BudgetIds, BudgetRef)

STRING = {"type": "string"}
MONEY = {"type": ["number", "null"]}


def _end_user_paths(prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}/new": admin_post(
            "Store an end user (a request's `user`) with its budget and limits.", "NewEndUser", "EndUser"
        ),
        f"{prefix}/info": admin_get(
            "An end user: its spend in the current budget period and the limits that bound it.",
            [query("end_user_id", STRING, required=True)],
            "EndUser",
        ),
        f"{prefix}/list": admin_get("Every end user, stored or named by requests.", [], "EndUserList"),
        f"{prefix}/update": admin_post("Change an end user (stored if requests only named it).", "NewEndUser", "EndUser"),
        f"{prefix}/delete": admin_post("Delete end users.", "EndUserIds", "DeletedEndUsers"),
        f"{prefix}/block": admin_post("Refuse every request naming these end users.", "EndUserIds", "BlockedEndUsers"),
        f"{prefix}/unblock": admin_post("Serve these end users again.", "EndUserIds", "BlockedEndUsers"),
    }


def budget_paths() -> dict[str, Any]:
    return {
        **_end_user_paths("/end_user"),
        **_end_user_paths("/customer"),
        "/budget/new": admin_post(
            "Create a budget object (limits that holders naming it are bound by).", "BudgetParams", "Budget"
        ),
        "/budget/update": admin_post("Change a budget object.", "BudgetParams", "Budget"),
        "/budget/info": {
            **admin_get("One budget object.", [query("budget_id", STRING, required=True)], "Budget"),
            "post": {
                "summary": "Budget objects by id (LiteLLM's shape).",
                "tags": ["admin"],
                "requestBody": body("BudgetIds"),
                "responses": {**json_ok("BudgetList"), **errors(ADMIN_ERRORS)},
            },
        },
        "/budget/list": admin_get("Every budget object.", [], "BudgetList"),
        "/budget/delete": admin_post("Delete a budget object no holder names.", "BudgetRef", "Budget"),
    }


_BUDGET = obj(
    ["budget_id"],
    budget_id=STRING,
    max_budget=MONEY,
    soft_budget=MONEY,
    budget_duration=NULLABLE_STRING,
    rpm_limit={"type": ["integer", "null"]},
    tpm_limit={"type": ["integer", "null"]},
)
_END_USER = obj(
    ["user_id", "blocked", "spend", "litellm_budget_table"],
    user_id=STRING,
    alias=NULLABLE_STRING,
    blocked={"type": "boolean"},
    spend={"type": "number"},
    budget_id=NULLABLE_STRING,
    litellm_budget_table={"type": ["object", "null"]},
)

BUDGET_RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "EndUser": _END_USER,
    "EndUserList": {"type": "array", "items": ref("EndUser")},
    "DeletedEndUsers": obj(["deleted_end_users"], deleted_end_users={"type": "array", "items": STRING}),
    "BlockedEndUsers": {
        "type": "object",
        "properties": {
            "blocked_users": {"type": "array", "items": ANY_OBJECT},
            "unblocked_users": {"type": "array", "items": ANY_OBJECT},
        },
    },
    "Budget": _BUDGET,
    "BudgetList": {"type": "array", "items": ref("Budget")},
}
