"""The response bodies of the OpenAPI document (gateway/openapi.py), written out by hand: the
edge writes its answers as bytes, so there is no Struct to derive them from."""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/{name}"

NULLABLE_STRING = {"type": ["string", "null"]}
ANY_OBJECT = {"type": "object"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def obj(required: list[str], **properties: Any) -> dict[str, Any]:
    """An object schema that names its required fields and lets any others through."""
    return {"type": "object", "required": required, "properties": properties}


# --- response bodies ---------------------------------------------------------------------------------

RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": obj(
        ["error"],
        error=obj(
            ["message", "type", "param", "code"],
            message={"type": "string"},
            type={"type": "string"},
            param=NULLABLE_STRING,
            code=NULLABLE_STRING,
        ),
    ),
    "AnthropicError": obj(
        ["type", "error"],
        type={"const": "error"},
        error=obj(["type", "message"], type={"type": "string"}, message={"type": "string"}),
        request_id={"type": "string"},
    ),
    "AnthropicTokenCount": obj(["input_tokens"], input_tokens={"type": "integer", "minimum": 0}),
    "ChatCompletion": obj(
        ["id", "object", "choices"],
        id={"type": "string"},
        object={"const": "chat.completion"},
        model={"type": "string"},
        choices={"type": "array", "items": ANY_OBJECT},
        usage=ANY_OBJECT,
    ),
    "EmbeddingList": obj(
        ["object", "data"],
        object={"const": "list"},
        data={
            "type": "array",
            "items": obj(["object", "index", "embedding"], object={"const": "embedding"}, index={"type": "integer"}),
        },
        usage=ANY_OBJECT,
    ),
    "ModelList": obj(
        ["object", "data"],
        object={"const": "list"},
        data={
            "type": "array",
            "items": obj(
                ["id", "object", "created", "owned_by"],
                id={"type": "string"},
                object={"const": "model"},
                created={"type": "integer"},
                owned_by={"type": "string"},
            ),
        },
    ),
    "AnthropicMessage": obj(
        ["id", "type", "role", "content"],
        id={"type": "string"},
        type={"const": "message"},
        role={"const": "assistant"},
        content={"type": "array", "items": ANY_OBJECT},
        usage=ANY_OBJECT,
    ),
    # Server-sent events: in OpenAPI 3.1 a text/event-stream `schema` describes one event.
    "ChatStreamEvent": obj(
        ["data"],
        data={"type": "string", "description": "A chat.completion.chunk as JSON, or `[DONE]` last."},
        event={"const": "message"},
    ),
    "AnthropicStreamEvent": obj(
        ["event", "data"],
        data={"type": "string", "description": "The event as JSON."},
        event={
            "enum": [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
                "error",
            ]
        },
    ),
    "GeneratedKey": obj(
        ["key", "token", "key_name"], key={"type": "string"}, token={"type": "string"}, key_name={"type": "string"}
    ),
    "KeyInfo": obj(["key", "info"], key={"type": "string"}, info=ANY_OBJECT),
    "KeyRecord": obj(["token", "spend"], token={"type": "string"}, spend={"type": "number"}),
    "KeyList": obj(
        ["keys", "total_count", "current_page", "total_pages"],
        keys={"type": "array", "items": {"anyOf": [{"type": "string"}, ANY_OBJECT]}},
        total_count={"type": "integer"},
        current_page={"type": "integer"},
        total_pages={"type": "integer"},
    ),
    "DeletedKeys": obj(["deleted_keys"], deleted_keys={"type": "array", "items": {"type": "string"}}),
    "NewUser": obj(["key", "user_id"], key={"type": ["string", "null"]}, user_id={"type": "string"}),
    "UserInfo": {
        "anyOf": [
            obj(
                ["user_id", "user_info", "keys", "teams"],
                user_id={"type": "string"},
                user_info=ANY_OBJECT,
                keys={"type": "array"},
                teams={"type": "array"},
            ),
            obj(
                ["users", "total_count", "page", "page_size", "total_pages"],
                users={"type": "array"},
                total_count={"type": "integer"},
                page={"type": "integer"},
                page_size={"type": "integer"},
                total_pages={"type": "integer"},
            ),
        ]
    },
    "UpdatedUser": obj(["user_id", "user_info"], user_id={"type": "string"}, user_info=ANY_OBJECT),
    "DeletedUsers": obj(["deleted_users"], deleted_users={"type": "array", "items": {"type": "string"}}),
    "Team": obj(["team_id"], team_id={"type": "string"}, members_with_roles={"type": "array"}),
    "TeamInfo": obj(["team_id", "team_info", "keys"], team_id={"type": "string"}, team_info=ANY_OBJECT, keys={"type": "array"}),
    "UpdatedTeam": obj(["team_id", "data"], team_id={"type": "string"}, data=ANY_OBJECT),
    "DeletedTeams": obj(["deleted_teams"], deleted_teams={"type": "array", "items": {"type": "string"}}),
    "Health": obj(["status"], status={"enum": ["ok", "ready", "not_ready"]}, checks=ANY_OBJECT),
}
