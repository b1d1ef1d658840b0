"""The building blocks of the OpenAPI document's operations (gateway/openapi.py and the modules
it merges): media types, the documented errors, request bodies, query parameters, admin and
health operations."""

from __future__ import annotations

from typing import Any

from gateway.openapi_schemas import ref

JSON = "application/json"
SSE = "text/event-stream"

REQUEST_ID_HEADER = {
    "x-request-id": {
        "description": "The gateway's id of this request (also in its usage row).",
        "required": True,
        "schema": {"type": "string", "pattern": "^req-[0-9a-f]{32}$"},
    },
}

ERROR_MEANINGS = {
    "400": "The request is invalid; `error.param` names the field.",
    "401": "No key, a malformed Authorization header, or an unknown, blocked, expired or deleted key.",
    "403": "The key may not use this model or this operation.",
    "404": "Unknown model (`model_not_found`) or record (`not_found`).",
    "409": "The record was changed concurrently; retry.",
    "413": "The body is over the edge's size limit (`payload_too_large`).",
    "429": "A rate limit or budget is exhausted (`retry-after` says when to retry).",
    "502": "The upstream provider failed or answered in an unreadable form.",
    "503": "The upstream provider is overloaded or no worker serves it.",
    "504": "No answer before the request's deadline.",
}

MODEL_ERRORS = ("400", "401", "403", "404", "413", "429", "502", "503", "504")
ADMIN_ERRORS = ("400", "401", "403", "404", "409", "413")


def errors(codes: tuple[str, ...], schema: str = "Error", with_request_id: bool = False) -> dict[str, Any]:
    out = {}
    for code in codes:
        response: dict[str, Any] = {"description": ERROR_MEANINGS[code], "content": {JSON: {"schema": ref(schema)}}}
        if with_request_id:
            response["headers"] = REQUEST_ID_HEADER
        out[code] = response
    return out


def json_ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"200": {"description": description, "content": {JSON: {"schema": ref(schema)}}}}


def body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": ref(schema)}}}


def query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def admin_post(summary: str, request: str, answer: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "tags": ["admin"],
            "requestBody": body(request),
            "responses": {**json_ok(answer), **errors(ADMIN_ERRORS)},
        }
    }


def admin_get(summary: str, parameters: list[dict[str, Any]], answer: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": ["admin"],
            "parameters": parameters,
            "responses": {**json_ok(answer), **errors(ADMIN_ERRORS)},
        }
    }


def health(summary: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    responses = {
        s: {"description": "ready" if s == "200" else "not ready", "content": {JSON: {"schema": ref("Health")}}} for s in statuses
    }
    return {"get": {"summary": summary, "tags": ["health"], "security": [], "responses": responses}}
