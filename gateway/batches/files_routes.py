"""The Files API: `POST /v1/files` (multipart: `purpose=batch` and a JSONL `file`, checked line by
line), `GET /v1/files` (the caller's own), `GET /v1/files/{id}`, `GET /v1/files/{id}/content` and
`DELETE /v1/files/{id}`, also without `/v1` and under `/openai`. A file is found only by the key,
the user or the team that made it: to anyone else it is a 404."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, delete, get, post

from gateway.audio.form import parse_form, text_of
from gateway.batches.file_store import file_object, new_file_id, now
from gateway.batches.jsonl import MAX_FILE_BYTES, check_batch_file
from gateway.batches.service import batches_of, caller_of, limit_of, not_found, page
from gateway.errors import GatewayError
from gateway.openai_api import openai_paths
from gateway.responses.request import bad_request
from llmgw.contracts import ErrorType, FilePurpose, FileRecord

_encoder = msgspec.json.Encoder()
FORM_MARGIN = 64 * 1024  # bytes of a multipart upload that are not the file (boundaries, fields)
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")  # OpenAI's upload purposes


def _json(value: object, status: int = 200) -> Response:
    return Response(content=_encoder.encode(value), media_type="application/json", status_code=status)


@post(openai_paths("files"), request_max_body_size=MAX_FILE_BYTES + FORM_MARGIN, status_code=200)
async def create_file(request: Request) -> Response:
    principal = await caller_of(request)
    parts = parse_form(request.headers.get("content-type"), await request.body())
    fields = {p.name: p for p in parts}
    purpose_part = fields.get("purpose")
    if purpose_part is None or purpose_part.filename is not None:
        raise bad_request("Missing required parameter: 'purpose'.", "purpose")
    purpose = text_of(purpose_part).strip()
    if purpose != FilePurpose.BATCH:
        if purpose in PURPOSES:
            raise bad_request(f"This gateway stores files of purpose 'batch' only, not {purpose!r}.", "purpose")
        raise bad_request(f"{purpose!r} is not one of {list(PURPOSES)} - 'purpose'", "purpose")
    file_part = fields.get("file")
    if file_part is None or file_part.filename is None:
        raise bad_request("Missing required parameter: 'file'.", "file")
    lines = check_batch_file(file_part.data)
    caller = principal.caller
    record = FileRecord(
        id=new_file_id(),
        bytes=len(file_part.data),
        created_at=now(),
        filename=file_part.filename.rsplit("/", 1)[-1][:255] or "upload.jsonl",
        purpose=purpose,
        key_hash=caller.key_hash,
        user_id=caller.user_id,
        team_id=caller.team_id,
        lines=lines,
    )
    await batches_of(request).files.put(record, file_part.data)
    return _json(file_object(record))


@get(openai_paths("files"))
async def list_files(request: Request) -> Response:
    principal = await caller_of(request)
    params = request.query_params
    limit = limit_of(params.get("limit"), 10_000, 10_000)
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request(f"Invalid 'order': expected 'asc' or 'desc', got {order!r}.", "order")
    records = await batches_of(request).files.owned_by(principal.caller)
    purpose = params.get("purpose")
    if purpose:
        records = [r for r in records if r.purpose == purpose]
    if order == "asc":
        records.reverse()
    return _json(page([file_object(r) for r in records], params.get("after"), limit))


async def _owned(request: Request, file_id: str) -> FileRecord:
    principal = await caller_of(request)
    record = await batches_of(request).files.find(file_id, principal.caller)
    if record is None:
        raise not_found("file", file_id)
    return record


@get(openai_paths("files/{file_id:str}"))
async def retrieve_file(request: Request, file_id: str) -> Response:
    return _json(file_object(await _owned(request, file_id)))


@get(openai_paths("files/{file_id:str}/content"))
async def file_content(request: Request, file_id: str) -> Response:
    record = await _owned(request, file_id)
    data = await batches_of(request).files.content(record.id)
    if data is None:
        raise not_found("file", file_id)
    return Response(content=data, media_type="application/octet-stream")


@delete(openai_paths("files/{file_id:str}"), status_code=200)
async def delete_file(request: Request, file_id: str) -> Response:
    record = await _owned(request, file_id)
    batches = batches_of(request)
    running = [
        found[0].id
        for batch_id in await batches.store.open_ids()
        if (found := await batches.store.get(batch_id)) is not None and found[0].input_file_id == record.id
    ]
    if running:
        raise GatewayError(
            409,
            f"The file {record.id} is the input of batch {running[0]}, which has not ended; cancel it first.",
            ErrorType.INVALID_REQUEST,
            "file_in_use",
            "file_id",
        )
    await batches.files.delete(record.id)
    return _json({"id": record.id, "object": "file", "deleted": True})


ROUTES = [create_file, list_files, retrieve_file, file_content, delete_file]
