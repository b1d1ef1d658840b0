"""The OpenAPI 3.1 document of the public API, served at `GET /openapi.json`.

Litestar cannot describe this API itself: the hot routes are raw ASGI handlers and the admin
routes read their bodies by hand. So the document is assembled here, once, when the app is built.
Request bodies come from the very msgspec Structs the routes decode with
(`msgspec.json.schema_components`), so they cannot drift from what the edge accepts; responses
are written out, and the fuzz test (tests/e2e/test_fuzz.py) checks every answer against them.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response, get

from gateway.admin.keys import DeleteKeys, KeyParams, KeyRef, UpdateKeyParams
from gateway.admin.team_members import MemberAdd
from gateway.admin.teams import DeleteTeams, NewTeamParams, UpdateTeamParams
from gateway.admin.users import DeleteUsers, NewUserParams, UpdateUserParams
from gateway.anthropic_messages.request import CountTokensRequest, MessagesRequest
from gateway.audio.openapi import AUDIO_OPERATIONS, audio_schemas
from gateway.batches.openapi import BATCH_SCHEMAS, batch_paths
from gateway.openapi_admin import ADMIN_REQUEST_TYPES, ADMIN_RESPONSE_SCHEMAS, admin_paths
from gateway.openapi_budgets import BUDGET_REQUEST_TYPES, BUDGET_RESPONSE_SCHEMAS, budget_paths
from gateway.openapi_media import MEDIA_REQUEST_TYPES, MEDIA_RESPONSE_SCHEMAS, media_checks, media_paths
from gateway.openapi_ops import (
    ADMIN_ERRORS,
    JSON,
    MODEL_ERRORS,
    REQUEST_ID_HEADER,
    SSE,
    admin_get,
    admin_post,
    body,
    errors,
    json_ok,
    query,
)
from gateway.openapi_orgs import ORG_REQUEST_TYPES, ORG_RESPONSE_SCHEMAS, org_paths
from gateway.openapi_reconcile import RECONCILE_REQUEST_TYPES, RECONCILE_RESPONSE_SCHEMAS, reconcile_paths
from gateway.openapi_schemas import REF, RESPONSE_SCHEMAS, obj, ref
from gateway.responses.openapi import RESPONSES_SCHEMAS, responses_checks, stored_response_paths
from gateway.responses.request import ResponsesRequest
from gateway.schemas import ChatCompletionRequest, EmbeddingsRequest
from gateway.settings import EdgeSettings
from gateway.stored_chat.openapi import STORED_CHAT_SCHEMAS, stored_chat_list, stored_chat_paths
from llmgw.contracts import USER_ROLES

REQUEST_TYPES = (
    ChatCompletionRequest,
    EmbeddingsRequest,
    MessagesRequest,
    CountTokensRequest,
    ResponsesRequest,
    KeyParams,
    UpdateKeyParams,
    KeyRef,
    DeleteKeys,
    NewUserParams,
    UpdateUserParams,
    DeleteUsers,
    NewTeamParams,
    UpdateTeamParams,
    MemberAdd,
    DeleteTeams,
    *MEDIA_REQUEST_TYPES,
    *ADMIN_REQUEST_TYPES,
    *ORG_REQUEST_TYPES,
    *BUDGET_REQUEST_TYPES,
    *RECONCILE_REQUEST_TYPES,
)


# --- operations ----------------------------------------------------------------------------------------


def model_call(summary: str, request: str, answer: str, stream_event: str | None, error_schema: str = "Error") -> dict[str, Any]:
    """A raw ASGI route: every answer, errors included, carries `x-request-id`."""
    content: dict[str, Any] = {JSON: {"schema": ref(answer)}}
    if stream_event:
        content[SSE] = {"schema": ref(stream_event)}
    ok = {
        "description": "The answer (a server-sent event stream when the request asked for `stream`).",
        "headers": REQUEST_ID_HEADER,
        "content": content,
    }
    return {
        "post": {
            "summary": summary,
            "requestBody": body(request),
            "responses": {"200": ok, **errors(MODEL_ERRORS, error_schema, with_request_id=True)},
        }
    }


def upload_call(summary: str, request_body: dict[str, Any], ok_content: dict[str, Any]) -> dict[str, Any]:
    """A model route whose body or answer is not JSON (the audio routes), described as given."""
    ok = {"description": "The answer.", "headers": REQUEST_ID_HEADER, "content": ok_content}
    return {
        "post": {
            "summary": summary,
            "requestBody": request_body,
            "responses": {"200": ok, **errors(MODEL_ERRORS, with_request_id=True)},
        }
    }


RESUMABLE_HEADER = {
    "name": "x-llmgw-resumable",
    "in": "header",
    "required": False,
    "schema": {"enum": ["true", "false"]},
    "description": "`true` on a streamed request: the stream's events carry `id:` lines and are kept, the "
    "generation goes on when the client goes away, and GET /v1/chat/completions/{x-request-id}/stream resumes it. "
    "Without the header, the key's (or team's) metadata `resumable_streams: true` asks the same; `false` asks for "
    "the stream to be cancelled when its client goes.",
}


def paths() -> dict[str, Any]:
    string, integer, boolean = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
    return {
        "/v1/chat/completions": {
            "post": {
                **model_call(
                    "Create a chat completion (OpenAI format); `store: true` keeps it.",
                    "ChatCompletionRequest",
                    "ChatCompletion",
                    "ChatStreamEvent",
                )["post"],
                "parameters": [RESUMABLE_HEADER],
            },
            "get": stored_chat_list(),
        },
        **stored_chat_paths(),
        "/v1/chat/completions/{completion_id}/stream": {
            "parameters": [{"name": "completion_id", "in": "path", "required": True, "schema": string}],
            "get": {
                "summary": "Resume a resumable chat stream (sent with `x-llmgw-resumable: true`; its id is the "
                "answer's `x-request-id`): every event after `Last-Event-ID`, then the live rest until it ends.",
                "parameters": [
                    {"name": "Last-Event-ID", "in": "header", "required": False, "schema": integer},
                    query("last_event_id", integer),
                ],
                "responses": {
                    "200": {"description": "The stream's events.", "content": {SSE: {"schema": ref("ChatStreamEvent")}}},
                    **errors(("400", "401", "404")),
                },
            },
        },
        "/v1/embeddings": model_call("Create embeddings (OpenAI format).", "EmbeddingsRequest", "EmbeddingList", None),
        "/v1/messages": {
            "post": {
                **model_call(
                    "Create a message (Anthropic Messages format), served by any model.",
                    "MessagesRequest",
                    "AnthropicMessage",
                    "AnthropicStreamEvent",
                    error_schema="AnthropicError",
                )["post"],
                "security": [{"bearer": []}, {"x-api-key": []}],  # Anthropic SDKs send the key as x-api-key
            }
        },
        "/v1/messages/count_tokens": {
            "post": {
                **model_call(
                    "Count a Messages request's input tokens (Anthropic's count, or the gateway's tokenizer).",
                    "CountTokensRequest",
                    "AnthropicTokenCount",
                    None,
                    error_schema="AnthropicError",
                )["post"],
                "security": [{"bearer": []}, {"x-api-key": []}],
            }
        },
        "/v1/responses": model_call(
            "Create a response (OpenAI's Responses API), served by any model.",
            "ResponsesRequest",
            "Response",
            "ResponseStreamEvent",
        ),
        **stored_response_paths(),
        **{path: upload_call(*operation) for path, operation in AUDIO_OPERATIONS.items()},
        **batch_paths(),
        **media_paths(model_call),
        "/v1/models": {
            "get": {
                "summary": "The models this key may use, wildcard groups' included.",
                "responses": {**json_ok("ModelList"), **errors(("401",))},
            }
        },
        "/key/generate": admin_post("Generate a virtual key (its plaintext is shown this once).", "KeyParams", "GeneratedKey"),
        "/key/info": {
            "get": {
                "summary": "A key's settings and spend (a non-admin key may only look itself up).",
                "tags": ["admin"],
                "parameters": [query("key", string)],
                "responses": {**json_ok("KeyInfo"), **errors(ADMIN_ERRORS)},
            }
        },
        "/key/update": admin_post("Change a key's settings.", "UpdateKeyParams", "KeyRecord"),
        "/key/delete": admin_post("Delete keys, by key or alias.", "DeleteKeys", "DeletedKeys"),
        "/key/list": admin_get(
            "List keys.",
            [
                query("page", {**integer, "minimum": 1}),
                query("size", {**integer, "minimum": 1, "maximum": 1000}),
                query("user_id", string),
                query("team_id", string),
                query("key_alias", string),
                query("return_full_object", boolean),
            ],
            "KeyList",
        ),
        "/key/regenerate": admin_post("Replace a key by a new one with the same settings.", "KeyRef", "GeneratedKey"),
        "/key/block": admin_post("Block a key.", "KeyRef", "KeyRecord"),
        "/key/unblock": admin_post("Unblock a key.", "KeyRef", "KeyRecord"),
        "/user/new": admin_post(
            "Create a user and, unless `auto_create_key` is false, its first key.", "NewUserParams", "NewUser"
        ),
        "/user/info": admin_get(
            "A user with its keys and teams, or every user (`view_all`).",
            [
                query("user_id", string),
                query("view_all", boolean),
                query("page", {**integer, "minimum": 0}),
                query("page_size", {**integer, "minimum": 1, "maximum": 1000}),
            ],
            "UserInfo",
        ),
        "/user/update": admin_post("Change a user.", "UpdateUserParams", "UpdatedUser"),
        "/user/delete": admin_post("Delete users and their keys.", "DeleteUsers", "DeletedUsers"),
        "/team/new": admin_post("Create a team.", "NewTeamParams", "Team"),
        "/team/info": admin_get("A team with its keys.", [query("team_id", string, required=True)], "TeamInfo"),
        "/team/update": admin_post("Change a team.", "UpdateTeamParams", "UpdatedTeam"),
        "/team/member_add": admin_post("Add members to a team.", "MemberAdd", "Team"),
        "/team/delete": admin_post("Delete teams and their keys.", "DeleteTeams", "DeletedTeams"),
        **admin_paths(),
        **org_paths(),
        **budget_paths(),
        **reconcile_paths(),
    }


# What the routes check beyond the Structs' types: (component, field) -> the field's schema.
CHECKED_FIELDS: dict[tuple[str, str], dict[str, Any]] = {
    ("NewUserParams", "user_role"): {"enum": [*USER_ROLES, None]},
    ("UpdateUserParams", "user_role"): {"enum": [*USER_ROLES, None]},
    ("TeamMember", "role"): {"enum": ["admin", "user"], "default": "user"},
}


def anthropic_checks(components: dict[str, Any]) -> None:
    """/v1/messages' own checks (gateway/anthropic_messages/request.py `_check`): which blocks each
    role may send (a system message inside `messages` text only), and client tools only, each
    with its input schema (what any model takes; an Anthropic deployment takes more)."""

    def blocks(*names: str) -> dict[str, Any]:
        return {"anyOf": [{"type": "string"}, {"type": "array", "items": {"anyOf": [ref(n) for n in names]}}]}

    thinking = ("ThinkingBlock", "RedactedThinkingBlock")
    components["Message"] = {
        "title": "Message",
        "oneOf": [
            obj(
                ["role", "content"],
                role={"const": "user"},
                content=blocks("TextBlock", "ImageBlock", "ToolResultBlock", *thinking),
            ),
            obj(["role", "content"], role={"const": "assistant"}, content=blocks("TextBlock", "ToolUseBlock", *thinking)),
            obj(["role", "content"], role={"const": "system"}, content=blocks("TextBlock")),
        ],
    }
    tool = components["Tool"]
    tool["required"] = sorted({*tool.get("required", []), "input_schema"})
    tool["properties"]["input_schema"] = {"type": "object"}
    tool["properties"]["type"] = {"enum": ["custom", None], "default": None}


def embeddings_checks(components: dict[str, Any]) -> None:
    """The edge refuses an empty `input`; providers refuse a list mixing strings and tokens."""
    tokens = {"type": "array", "items": {"type": "integer"}, "minItems": 1}
    components["EmbeddingsRequest"]["properties"]["input"] = {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
            tokens,
            {"type": "array", "items": tokens, "minItems": 1},
        ]
    }


def request_schemas(settings: EdgeSettings) -> dict[str, Any]:
    """The request Structs as JSON Schema, with the routes' own checks (CHECKED_FIELDS); a
    `refuse` max-tokens limit becomes a `maximum`."""
    _, components = msgspec.json.schema_components(REQUEST_TYPES, ref_template=REF)
    for (component, field), schema in CHECKED_FIELDS.items():
        components[component]["properties"][field] = schema
    anthropic_checks(components)
    embeddings_checks(components)
    responses_checks(components)
    media_checks(components)
    limit = settings.max_tokens_limit
    if limit is not None and settings.max_tokens_policy == "refuse":
        for component, name in (
            ("ChatCompletionRequest", "max_tokens"),
            ("ChatCompletionRequest", "max_completion_tokens"),
            ("CompletionRequest", "max_tokens"),
        ):
            for option in components[component]["properties"][name]["anyOf"]:
                if option.get("type") == "integer":
                    option["maximum"] = limit
        components["MessagesRequest"]["properties"]["max_tokens"]["maximum"] = limit
    return components


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    """The components of every part; a name two parts define would silently replace one schema."""
    out: dict[str, Any] = {}
    for part in parts:
        if twice := out.keys() & part.keys():
            raise ValueError(f"OpenAPI components defined twice: {sorted(twice)}")
        out.update(part)
    return out


def build_openapi(settings: EdgeSettings) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmgw",
            "version": "0.1.0",
            "description": (
                "An LLM gateway: virtual keys, one OpenAI-compatible API for every provider. Errors are "
                '`{"error": {"message", "type", "param", "code"}}` (Anthropic-shaped on /v1/messages). '
                f"Request bodies are limited to {settings.max_body_bytes} bytes. The same routes are also served "
                "without the /v1 prefix and under /openai."
            ),
        },
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A virtual key (sk-...) or the master key."},
                "x-api-key": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "The same key, as Anthropic SDKs send it (/v1/messages).",
                },
            },
            "schemas": merged(
                request_schemas(settings),
                audio_schemas(),
                RESPONSE_SCHEMAS,
                MEDIA_RESPONSE_SCHEMAS,
                RESPONSES_SCHEMAS,
                STORED_CHAT_SCHEMAS,
                ADMIN_RESPONSE_SCHEMAS,
                ORG_RESPONSE_SCHEMAS,
                BUDGET_RESPONSE_SCHEMAS,
                RECONCILE_RESPONSE_SCHEMAS,
                BATCH_SCHEMAS,
            ),
        },
    }


def build_openapi_routes(settings: EdgeSettings) -> list:
    """`GET /openapi.json`, unauthenticated: the document says nothing a key holder should not know."""
    document = msgspec.json.encode(build_openapi(settings))

    @get("/openapi.json", include_in_schema=False)
    async def openapi_json() -> Response:
        return Response(content=document, media_type=JSON)

    return [openapi_json]
