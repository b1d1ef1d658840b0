"""The OpenAPI entries of the LiteLLM-style management routes beyond keys, users and teams'
basics (merged into the document by gateway/openapi.py): models at run time and their groups,
user and team listing, team members, models and blocking, credentials, the system-prompt
policy, spend, deployment health, the probes and `/routes`. Request bodies are the Structs the
handlers decode; answers are written out as the handlers write them."""

from __future__ import annotations

from typing import Any

from gateway.admin.models import ModelDelete, ModelUpdate, NewModel
from gateway.admin.runtime_settings import SetCredential, SetSystemPrompt
from gateway.admin.team_members import MemberRef, MemberUpdate
from gateway.admin.teams import TeamModels, TeamRef
from gateway.openapi_ops import ADMIN_ERRORS, JSON, admin_get, admin_post, body, errors, health, json_ok, query
from gateway.openapi_schemas import ANY_OBJECT, NULLABLE_STRING, obj, ref

ADMIN_REQUEST_TYPES = (
    NewModel,
    ModelUpdate,
    ModelDelete,
    MemberRef,
    MemberUpdate,
    TeamRef,
    TeamModels,
    SetCredential,
    SetSystemPrompt,
)

STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
DATE = {"type": "string", "format": "date"}
MODEL_ID = {"name": "model_id", "in": "path", "required": True, "schema": STRING}
KEY = {"name": "key", "in": "path", "required": True, "schema": STRING}


def _model_paths() -> dict[str, Any]:
    info = admin_get(
        "The deployments this key may use (every one for admins; upstream address and key only for them).",
        [query("litellm_model_id", STRING)],
        "ModelInfoList",
    )
    group_info = admin_get(
        "The model groups this key may use, with providers and prices per token.",
        [query("model_group", STRING)],
        "ModelGroupList",
    )
    return {
        "/model/new": admin_post("Add a deployment at run time (served by every edge and worker).", "NewModel", "RuntimeModel"),
        "/model/update": admin_post(
            "Change a deployment added at run time (`model_info.id` names it).", "ModelUpdate", "RuntimeModel"
        ),
        "/model/{model_id}/update": {
            "parameters": [MODEL_ID],
            "patch": {
                "summary": "Change a deployment added at run time.",
                "tags": ["admin"],
                "requestBody": body("ModelUpdate"),
                "responses": {**json_ok("RuntimeModel"), **errors(ADMIN_ERRORS)},
            },
        },
        "/model/delete": admin_post("Delete a deployment added at run time.", "ModelDelete", "DeletedModel"),
        "/model/info": info,
        "/v1/model/info": info,
        "/model_group/info": group_info,
        "/v1/model_group/info": group_info,
    }


def _user_team_paths() -> dict[str, Any]:
    team_change = "UpdatedTeam"
    return {
        "/key/{key}/regenerate": {
            "parameters": [KEY],
            "post": {
                "summary": "Replace a key by a new one with the same settings (a body changes some of them).",
                "tags": ["admin"],
                "requestBody": {"required": False, "content": {JSON: {"schema": ref("KeyParams")}}},
                "responses": {**json_ok("GeneratedKey"), **errors(ADMIN_ERRORS)},
            },
        },
        "/user/list": admin_get(
            "Users, a page at a time (admins and admin viewers).",
            [
                query("page", {**INTEGER, "minimum": 1}),
                query("page_size", {**INTEGER, "minimum": 1, "maximum": 1000}),
                query("role", STRING),
                query("user_ids", {**STRING, "description": "comma-separated user ids"}),
                query("team", STRING),
            ],
            "UserList",
        ),
        "/team/list": admin_get("The teams this key may read.", [query("user_id", STRING)], "TeamList"),
        "/team/member_update": admin_post(
            "Change a member's role or budget (`max_budget_in_team`, `budget_id`) in a team.", "MemberUpdate", "UpdatedMember"
        ),
        "/team/member_delete": admin_post("Remove a member from a team.", "MemberRef", "Team"),
        "/team/model/add": admin_post("Add models to a team's list.", "TeamModels", team_change),
        "/team/model/delete": admin_post("Remove models from a team's list.", "TeamModels", team_change),
        "/team/block": admin_post("Block every key of a team.", "TeamRef", "Team"),
        "/team/unblock": admin_post("Unblock a team.", "TeamRef", "Team"),
    }


def _settings_paths() -> dict[str, Any]:
    prompt = {**json_ok("SystemPrompt"), **errors(ADMIN_ERRORS)}
    dates = [query("start_date", DATE), query("end_date", DATE)]
    return {
        "/credentials": admin_get("Where each deployment's upstream key comes from (masked).", [], "CredentialList"),
        "/credentials/set": admin_post(
            "Set a deployment's upstream key at run time (by deployment id or model group).", "SetCredential", "CredentialSet"
        ),
        "/policy/system_prompt": {
            "get": {"summary": "The global system prompt.", "tags": ["admin"], "responses": prompt},
            "post": {
                "summary": "Set the system prompt of everyone, a team or a key (null removes it).",
                "tags": ["admin"],
                "requestBody": body("SetSystemPrompt"),
                "responses": prompt,
            },
        },
        "/spend/logs": admin_get(
            "Usage rows, newest first (LiteLLM's spend logs); `request_id` also takes the answer's `id`.",
            [
                query("api_key", STRING),
                query("user_id", STRING),
                query("team_id", STRING),
                query("end_user", STRING),
                query("request_id", STRING),
                *dates,
                query("limit", {**INTEGER, "minimum": 1, "maximum": 10000}),
            ],
            "SpendLogs",
        ),
        "/global/spend/report": admin_get(
            "Spend per team, user, key, model, end user (`customer`) or request tag, and per model within each.",
            [*dates, query("group_by", {"enum": ["team", "user", "api_key", "model", "customer", "tag"]})],
            "SpendReport",
        ),
    }


def _health_paths() -> dict[str, Any]:
    readiness = {
        s: {"description": "ready" if s == "200" else "not ready", "content": {JSON: {"schema": ref("Readiness")}}}
        for s in ("200", "503")
    }

    def probe(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
        return {"get": {"summary": summary, "tags": ["health"], "security": [], "responses": responses}}

    return {
        "/health": admin_get(
            "Each deployment's health: recent traffic and cooldowns, or a call to each (`active`).",
            [
                query("active", BOOLEAN),
                query("window", {**INTEGER, "minimum": 1, "maximum": 1440, "description": "minutes of traffic"}),
                query("model", STRING),
                query("model_id", STRING),
            ],
            "DeploymentHealth",
        ),
        "/health/live": health("The edge process is up.", ("200",)),
        "/health/ready": health("The edge reaches the bus and every configured provider has a worker.", ("200", "503")),
        "/health/liveliness": probe(
            "LiteLLM's liveness probe: the process answers.",
            {"200": {"description": "alive", "content": {JSON: {"schema": {"const": "I'm alive!"}}}}},
        ),
        "/health/readiness": probe("LiteLLM's readiness probe (as /health/ready, in LiteLLM's shape).", readiness),
        "/routes": probe("Every route this edge serves (LiteLLM's `/routes`).", json_ok("RouteList")),
        "/metrics": probe(
            "Prometheus metrics of the whole edge (all its HTTP workers), in Prometheus' text format.",
            {"200": {"description": "The metrics.", "content": {"text/plain": {"schema": STRING}}}},
        ),
        "/openapi.json": probe(
            "This document.", {"200": {"description": "The OpenAPI document.", "content": {JSON: {"schema": ANY_OBJECT}}}}
        ),
    }


def admin_paths() -> dict[str, Any]:
    return {**_model_paths(), **_user_team_paths(), **_settings_paths(), **_health_paths()}


_MODEL = {
    "model_name": STRING,
    "litellm_params": obj(["model"], model=NULLABLE_STRING),
    "model_info": obj(["id"], id=STRING),
}

ADMIN_RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "RuntimeModel": obj(
        ["model_id", "model_name", "litellm_params", "model_info", "created_at", "updated_at"],
        model_id=STRING,
        created_by=NULLABLE_STRING,
        created_at=STRING,
        updated_at=STRING,
        **_MODEL,
    ),
    "ModelInfoList": obj(
        ["data"], data={"type": "array", "items": obj(["model_name", "litellm_params", "model_info"], **_MODEL)}
    ),
    "ModelGroupList": obj(
        ["data"],
        data={
            "type": "array",
            "items": obj(
                ["model_group", "providers"],
                model_group=STRING,
                providers={"type": "array", "items": STRING},
                input_cost_per_token={"type": ["number", "null"]},
                output_cost_per_token={"type": ["number", "null"]},
            ),
        },
    ),
    "DeletedModel": obj(["message"], message=STRING),
    "UserList": obj(
        ["users", "total", "page", "page_size", "total_pages"],
        users={"type": "array", "items": obj(["user_id"], user_id=STRING)},
        total=INTEGER,
        page=INTEGER,
        page_size=INTEGER,
        total_pages=INTEGER,
    ),
    "TeamList": {"type": "array", "items": obj(["team_id"], team_id=STRING)},
    "UpdatedMember": obj(
        ["team_id", "user_id", "role", "data"], team_id=STRING, user_id=STRING, role=NULLABLE_STRING, data=ANY_OBJECT
    ),
    "CredentialList": obj(
        ["data"],
        data={
            "type": "array",
            "items": obj(
                ["deployment_id", "model_name", "source", "api_key"],
                deployment_id=STRING,
                model_name=STRING,
                source={"enum": ["runtime", "config", "none"]},
                api_key=NULLABLE_STRING,
            ),
        },
    ),
    "CredentialSet": obj(["updated", "api_key"], updated={"type": "array", "items": STRING}, api_key=STRING),
    "SystemPrompt": obj(["system_prompt"], system_prompt=NULLABLE_STRING),
    "SpendLogs": {
        "type": "array",
        "items": obj(
            ["request_id", "response_id", "call_type", "model_group", "spend", "status"],
            request_id=STRING,
            response_id=NULLABLE_STRING,
            call_type=STRING,
            model_group=STRING,
            spend={"type": "number"},
            status=STRING,
        ),
    },
    "SpendReport": {"type": "array", "items": ANY_OBJECT},
    "DeploymentHealth": obj(
        ["healthy_endpoints", "unhealthy_endpoints", "healthy_count", "unhealthy_count", "active_check"],
        healthy_endpoints={"type": "array", "items": obj(["model_name", "model_id"], model_name=STRING, model_id=STRING)},
        unhealthy_endpoints={
            "type": "array",
            "items": obj(["model_name", "model_id", "error"], model_name=STRING, model_id=STRING, error=STRING),
        },
        healthy_count=INTEGER,
        unhealthy_count=INTEGER,
        active_check=BOOLEAN,
    ),
    "Readiness": obj(
        ["status", "db", "cache"],
        status={"enum": ["healthy", "unhealthy"]},
        db={"enum": ["connected", "Not connected"]},
        cache={"enum": ["connected", "Not connected"]},
        checks=ANY_OBJECT,
    ),
    "RouteList": obj(
        ["routes"],
        routes={
            "type": "array",
            "items": obj(
                ["path", "methods", "name"], path=STRING, methods={"type": "array", "items": STRING}, name=NULLABLE_STRING
            ),
        },
    ),
}
