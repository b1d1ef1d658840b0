"""The Responses API's part of the OpenAPI document (gateway/openapi.py): the schemas of its
answers, and the input items the edge checks (gateway/responses/items.py), which the request
Struct leaves as plain objects."""

from __future__ import annotations

from typing import Any

from gateway.openapi_schemas import ANY_OBJECT, NULLABLE_STRING, obj, ref

STRING = {"type": "string"}

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
    request["properties"]["background"] = {"enum": [False, None]}
