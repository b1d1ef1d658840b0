"""The Responses API's part of the OpenAPI document (gateway/openapi.py): the schemas of its
answers, and the input items the edge checks (gateway/responses/items.py), which the request
Struct leaves as plain objects."""

from __future__ import annotations

from typing import Any

from gateway.openapi_ops import JSON, SSE, errors, json_ok, query
from gateway.openapi_schemas import ANY_OBJECT, NULLABLE_STRING, obj, ref

STRING = {"type": "string"}
RESPONSE_ID = {"name": "response_id", "in": "path", "required": True, "schema": STRING}

RESPONSES_SCHEMAS: dict[str, dict[str, Any]] = {
    "Response": obj(
        ["id", "object", "created_at", "status", "model", "output"],
        id=STRING,
        object={"const": "response"},
        created_at={"type": "number"},
        status=STRING,
        model=STRING,
        output={"type": "array", "items": ANY_OBJECT},
        usage={"anyOf": [ANY_OBJECT, {"type": "null"}]},
    ),
    # In OpenAPI 3.1 a text/event-stream `schema` describes one event.
    "ResponseStreamEvent": obj(
        ["event", "data"],
        event={"type": "string", "description": "The event's type: response.created, response.output_text.delta, ..."},
        data={"type": "string", "description": "The event as JSON, with its `type` and `sequence_number`."},
    ),
    "ResponseInputItemList": obj(
        ["object", "data", "first_id", "last_id", "has_more"],
        object={"const": "list"},
        data={"type": "array", "items": obj(["id", "type"], id=STRING, type=STRING)},
        first_id=NULLABLE_STRING,
        last_id=NULLABLE_STRING,
        has_more={"type": "boolean"},
    ),
    "DeletedResponse": obj(["id", "object", "deleted"], id=STRING, object={"const": "response"}, deleted={"const": True}),
}


def _part() -> dict[str, Any]:
    return obj(["type"], type={"type": "string", "minLength": 1})


def input_item_schemas() -> dict[str, dict[str, Any]]:
    content = {"anyOf": [STRING, {"type": "array", "items": _part()}]}
    return {
        "ResponseMessageItem": obj(
            ["role", "content"],
            type={"const": "message"},
            role={"enum": ["user", "assistant", "system", "developer"]},
            content=content,
        ),
        "ResponseFunctionCallItem": obj(
            ["type", "call_id", "name", "arguments"],
            type={"const": "function_call"},
            call_id=STRING,
            name=STRING,
            arguments=STRING,
        ),
        "ResponseFunctionCallOutputItem": obj(
            ["type", "call_id", "output"],
            type={"const": "function_call_output"},
            call_id=STRING,
            output={"anyOf": [STRING, {"type": "array", "items": _part()}]},
        ),
    }


def responses_checks(components: dict[str, Any]) -> None:
    """`input` is a string or a list of items: messages, function calls and their outputs (other
    item types go on to deployments that speak the Responses API, see items.py)."""
    components.update(input_item_schemas())
    item = {"anyOf": [ref("ResponseMessageItem"), ref("ResponseFunctionCallItem"), ref("ResponseFunctionCallOutputItem")]}
    request = components["ResponsesRequest"]
    request["properties"]["input"] = {"anyOf": [STRING, {"type": "array", "items": item}]}
    request["required"] = sorted({*request.get("required", []), "input"})
    request["properties"]["background"] = {
        "anyOf": [{"type": "boolean"}, {"type": "null"}],
        "description": "Answer at once with the response `queued` and run it on the gateway (it needs `store`); "
        "with `stream`, the answer is the event stream, resumable with `GET /v1/responses/{id}?stream=true`.",
    }


def stored_response_paths() -> dict[str, Any]:
    """The routes of stored responses (gateway/responses/retrieval.py), background ones included."""
    integer = {"type": "integer"}
    return {
        "/v1/responses/{response_id}": {
            "parameters": [RESPONSE_ID],
            "get": {
                "summary": "A stored response (only the key, user or team that made it finds it); a background "
                "one as it is now (queued, in_progress, completed, failed, cancelled or incomplete). With "
                "`stream=true` (a background response created with `stream`): its events numbered after "
                "`starting_after`, then the live rest until it ends.",
                "parameters": [
                    query("stream", {"type": "boolean"}),
                    query("starting_after", integer),
                    query("include", STRING),
                    query("include_obfuscation", {"type": "boolean"}),
                ],
                "responses": {
                    "200": {
                        "description": "The response, or (stream=true) its events.",
                        "content": {JSON: {"schema": ref("Response")}, SSE: {"schema": ref("ResponseStreamEvent")}},
                    },
                    **errors(("400", "401", "404")),
                },
            },
            "delete": {
                "summary": "Delete a stored response.",
                "responses": {**json_ok("DeletedResponse"), **errors(("401", "404"))},
            },
        },
        "/v1/responses/{response_id}/cancel": {
            "parameters": [RESPONSE_ID],
            "post": {
                "summary": "Cancel a background response: its upstream call is stopped (its usage so far "
                "metered) and it is answered with status cancelled; one already over is answered as it is.",
                "responses": {**json_ok("Response"), **errors(("400", "401", "404"))},
            },
        },
        "/v1/responses/{response_id}/input_items": {
            "parameters": [RESPONSE_ID],
            "get": {
                "summary": "The items a stored response was generated from, a page at a time.",
                "parameters": [
                    query("after", STRING),
                    query("limit", {**integer, "minimum": 1, "maximum": 100}),
                    query("order", {"enum": ["asc", "desc"]}),
                ],
                "responses": {**json_ok("ResponseInputItemList"), **errors(("400", "401", "404"))},
            },
        },
    }
