"""The stored chat completions' part of the OpenAPI document (gateway/openapi.py): their routes
(`GET /v1/chat/completions` and `/v1/chat/completions/{completion_id}[/messages]`) and the
schemas of their answers."""

from __future__ import annotations

from typing import Any

from gateway.openapi_ops import body, errors, json_ok, query
from gateway.openapi_schemas import NULLABLE_STRING, obj, ref

STRING = {"type": "string"}
METADATA = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 512}, "maxProperties": 16}
COMPLETION_ID = {"name": "completion_id", "in": "path", "required": True, "schema": STRING}
PAGE = [
    query("after", STRING),
    query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
    query("order", {"enum": ["asc", "desc"]}),
]


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return obj(
        ["object", "data", "first_id", "last_id", "has_more"],
        object={"const": "list"},
        data={"type": "array", "items": items},
        first_id=NULLABLE_STRING,
        last_id=NULLABLE_STRING,
        has_more={"type": "boolean"},
    )


STORED_CHAT_SCHEMAS: dict[str, dict[str, Any]] = {
    "ChatCompletionList": _list(ref("ChatCompletion")),
    "ChatCompletionMessageList": _list(
        obj(["id", "role"], id=STRING, role=STRING, content={"anyOf": [STRING, {"type": "null"}]})
    ),
    "ChatCompletionDeleted": obj(
        ["object", "id", "deleted"], object={"const": "chat.completion.deleted"}, id=STRING, deleted={"const": True}
    ),
    "ChatCompletionUpdate": obj(["metadata"], metadata={"anyOf": [METADATA, {"type": "null"}]}),
}


def stored_chat_list() -> dict[str, Any]:
    """`GET /v1/chat/completions` (the path's `post` is the chat route's)."""
    metadata = {"name": "metadata", "in": "query", "style": "deepObject", "explode": True, "schema": METADATA}
    return {
        "summary": "The caller's stored chat completions (`store: true`), a page at a time, oldest first by default.",
        "parameters": [*PAGE, metadata, query("model", STRING)],
        "responses": {**json_ok("ChatCompletionList"), **errors(("400", "401"))},
    }


def stored_chat_paths() -> dict[str, Any]:
    found = ("401", "404")
    return {
        "/v1/chat/completions/{completion_id}": {
            "parameters": [COMPLETION_ID],
            "get": {
                "summary": "A stored chat completion (only the key, user or team that made it finds it).",
                "responses": {**json_ok("ChatCompletion"), **errors(found)},
            },
            "post": {
                "summary": "Replace a stored chat completion's metadata.",
                "requestBody": body("ChatCompletionUpdate"),
                "responses": {**json_ok("ChatCompletion"), **errors(("400", *found))},
            },
            "delete": {
                "summary": "Delete a stored chat completion.",
                "responses": {**json_ok("ChatCompletionDeleted"), **errors(found)},
            },
        },
        "/v1/chat/completions/{completion_id}/messages": {
            "parameters": [COMPLETION_ID],
            "get": {
                "summary": "The messages of a stored chat completion's request, a page at a time.",
                "parameters": PAGE,
                "responses": {**json_ok("ChatCompletionMessageList"), **errors(("400", *found))},
            },
        },
    }
