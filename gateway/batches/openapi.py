"""The Files and Batch APIs' part of the OpenAPI document (gateway/openapi.py): their operations,
the batch creation body (from the Struct the route decodes) and their answers."""

from __future__ import annotations

from typing import Any

from gateway.batches.jsonl import MAX_FILE_BYTES, MAX_REQUESTS
from gateway.openapi_ops import errors, json_ok, query
from gateway.openapi_schemas import ANY_OBJECT, NULLABLE_STRING, obj, ref
from llmgw.contracts import BATCH_ENDPOINTS

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
FILE_ID = {"name": "file_id", "in": "path", "required": True, "schema": STRING}
BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": STRING}
STATUSES = ["validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"]


def _list_of(item: str) -> dict[str, Any]:
    return obj(
        ["object", "data", "first_id", "last_id", "has_more"],
        object={"const": "list"},
        data={"type": "array", "items": ref(item)},
        first_id=NULLABLE_STRING,
        last_id=NULLABLE_STRING,
        has_more={"type": "boolean"},
    )


BATCH_SCHEMAS: dict[str, dict[str, Any]] = {
    "FileUpload": {
        "type": "object",
        "required": ["file", "purpose"],
        "properties": {
            "file": {
                "type": "string",
                "contentMediaType": "application/octet-stream",
                "description": (
                    f"JSONL, at most {MAX_FILE_BYTES} bytes and {MAX_REQUESTS} lines, each "
                    '`{"custom_id", "method": "POST", "url", "body"}` with a unique custom_id and a url among '
                    f"{', '.join(BATCH_ENDPOINTS)}."
                ),
            },
            "purpose": {"const": "batch", "description": "The gateway keeps files for batches only."},
        },
    },
    "FileObject": obj(
        ["id", "object", "bytes", "created_at", "filename", "purpose", "status"],
        id=STRING,
        object={"const": "file"},
        bytes=INTEGER,
        created_at=INTEGER,
        filename=STRING,
        purpose={"enum": ["batch", "batch_output"]},
        status={"enum": ["uploaded", "processed", "error"]},
        expires_at=NULLABLE_INTEGER,
        status_details=NULLABLE_STRING,
    ),
    "FileList": _list_of("FileObject"),
    "DeletedFile": obj(["id", "object", "deleted"], id=STRING, object={"const": "file"}, deleted={"const": True}),
    "BatchCreateRequest": obj(
        ["input_file_id", "endpoint", "completion_window"],
        input_file_id={**STRING, "description": "A file of purpose `batch` the caller uploaded."},
        endpoint={"enum": list(BATCH_ENDPOINTS)},
        completion_window={"const": "24h"},
        metadata={
            "anyOf": [
                {"type": "object", "additionalProperties": {"type": "string", "maxLength": 512}, "maxProperties": 16},
                {"type": "null"},
            ]
        },
        output_expires_after={"anyOf": [ANY_OBJECT, {"type": "null"}]},
    ),
    "Batch": obj(
        ["id", "object", "endpoint", "input_file_id", "completion_window", "status", "created_at", "request_counts"],
        id=STRING,
        object={"const": "batch"},
        endpoint=STRING,
        errors={"anyOf": [obj(["object", "data"], object={"const": "list"}, data={"type": "array"}), {"type": "null"}]},
        input_file_id=STRING,
        completion_window=STRING,
        status={"enum": STATUSES},
        output_file_id=NULLABLE_STRING,
        error_file_id=NULLABLE_STRING,
        created_at=INTEGER,
        in_progress_at=NULLABLE_INTEGER,
        expires_at=NULLABLE_INTEGER,
        finalizing_at=NULLABLE_INTEGER,
        completed_at=NULLABLE_INTEGER,
        failed_at=NULLABLE_INTEGER,
        expired_at=NULLABLE_INTEGER,
        cancelling_at=NULLABLE_INTEGER,
        cancelled_at=NULLABLE_INTEGER,
        request_counts=obj(["total", "completed", "failed"], total=INTEGER, completed=INTEGER, failed=INTEGER),
        usage={"anyOf": [ANY_OBJECT, {"type": "null"}]},
        metadata={
            "anyOf": [ANY_OBJECT, {"type": "null"}],
            "description": "The caller's metadata, and `llmgw_spend`: the spend so far (USD, as text).",
        },
        spend={"type": "number", "description": "USD the batch's lines cost so far (their usage rows' cost)."},
    ),
    "BatchList": _list_of("Batch"),
}

OWNED = "Only the key, the user or the team that made it finds it (to anyone else: 404)."


def batch_paths() -> dict[str, Any]:
    upload = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": ref("FileUpload"),
                "encoding": {"file": {"contentType": "application/octet-stream"}},
            }
        },
    }
    return {
        "/v1/files": {
            "post": {
                "summary": "Upload a batch input file (JSONL, checked line by line).",
                "tags": ["files"],
                "requestBody": upload,
                "responses": {**json_ok("FileObject"), **errors(("400", "401", "413"))},
            },
            "get": {
                "summary": "The caller's files (its key's, its user's and its team's), newest first.",
                "tags": ["files"],
                "parameters": [
                    query("purpose", STRING),
                    query("limit", {**INTEGER, "minimum": 1, "maximum": 10000}),
                    query("order", {"enum": ["asc", "desc"]}),
                    query("after", STRING),
                ],
                "responses": {**json_ok("FileList"), **errors(("400", "401"))},
            },
        },
        "/v1/files/{file_id}": {
            "parameters": [FILE_ID],
            "get": {
                "summary": f"A file. {OWNED}",
                "tags": ["files"],
                "responses": {**json_ok("FileObject"), **errors(("401", "404"))},
            },
            "delete": {
                "summary": "Delete a file (409 while it is the input of a batch that has not ended).",
                "tags": ["files"],
                "responses": {**json_ok("DeletedFile"), **errors(("401", "404", "409"))},
            },
        },
        "/v1/files/{file_id}/content": {
            "parameters": [FILE_ID],
            "get": {
                "summary": f"A file's bytes (a batch's output and error files: OpenAI's JSONL). {OWNED}",
                "tags": ["files"],
                "responses": {
                    "200": {"description": "The file.", "content": {"application/octet-stream": {"schema": STRING}}},
                    **errors(("401", "404")),
                },
            },
        },
        "/v1/batches": {
            "post": {
                "summary": (
                    "Create a batch: each line of the input file runs through the gateway as its own request "
                    "(budgets, rate limits, one usage row each), at batch priority."
                ),
                "tags": ["batches"],
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("BatchCreateRequest")}}},
                "responses": {**json_ok("Batch"), **errors(("400", "401", "404"))},
            },
            "get": {
                "summary": "The caller's batches, newest first.",
                "tags": ["batches"],
                "parameters": [query("after", STRING), query("limit", {**INTEGER, "minimum": 1, "maximum": 100})],
                "responses": {**json_ok("BatchList"), **errors(("400", "401"))},
            },
        },
        "/v1/batches/{batch_id}": {
            "parameters": [BATCH_ID],
            "get": {
                "summary": f"A batch: its status, counts, spend so far and files. {OWNED}",
                "tags": ["batches"],
                "responses": {**json_ok("Batch"), **errors(("401", "404"))},
            },
        },
        "/v1/batches/{batch_id}/cancel": {
            "parameters": [BATCH_ID],
            "post": {
                "summary": "Cancel a batch: no more lines start, those running finish (cancelling, then cancelled).",
                "tags": ["batches"],
                "responses": {**json_ok("Batch"), **errors(("401", "404", "409"))},
            },
        },
    }
