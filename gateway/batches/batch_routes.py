"""The Batch API: `POST /v1/batches`, `GET /v1/batches` (the caller's own, `after` / `limit`),
`GET /v1/batches/{id}` and `POST /v1/batches/{id}/cancel` (also without `/v1` and under `/openai`),
in OpenAI's shapes. The lines run on this edge's runner, or another's (gateway/batches/runner.py);
a batch is found only by the key, the user or the team that made it (to anyone else: 404)."""

from __future__ import annotations

import secrets

import msgspec
from litestar import Request, Response, get, post

from gateway.batches.file_store import now, owned
from gateway.batches.service import batches_of, caller_of, limit_of, not_found, page
from gateway.batches.wire import batch_object
from gateway.errors import GatewayError
from gateway.openai_api import openai_paths
from gateway.responses.request import bad_request
from llmgw.contracts import BATCH_ENDPOINTS, BatchRecord, BatchStatus, ErrorType, FilePurpose

_encoder = msgspec.json.Encoder()
WINDOW_SECONDS = {"24h": 24 * 3600}
MAX_METADATA = 16  # pairs (OpenAI's limits)
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


class BatchCreate(msgspec.Struct, frozen=True, kw_only=True):
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None
    output_expires_after: dict | None = None  # (accepted; output files are kept until deleted)


_create_decoder = msgspec.json.Decoder(BatchCreate)


def _json(value: object) -> Response:
    return Response(content=_encoder.encode(value), media_type="application/json")


def _parsed(body: bytes) -> BatchCreate:
    try:
        params = _create_decoder.decode(body)
    except msgspec.ValidationError as exc:
        path = str(exc).rpartition("at `$.")[2].rstrip("`") or None
        raise bad_request(f"Invalid request: {exc}.", path.split(".")[0].split("[")[0] if path else None) from None
    except msgspec.DecodeError:
        raise bad_request("The request body is not valid JSON.", None) from None
    if params.endpoint not in BATCH_ENDPOINTS:
        raise bad_request(f"Invalid 'endpoint': {params.endpoint!r}; expected one of {', '.join(BATCH_ENDPOINTS)}.", "endpoint")
    if params.completion_window not in WINDOW_SECONDS:
        raise bad_request(f"Invalid 'completion_window': {params.completion_window!r}; expected '24h'.", "completion_window")
    metadata = params.metadata or {}
    if len(metadata) > MAX_METADATA:
        raise bad_request(f"Invalid 'metadata': at most {MAX_METADATA} pairs.", "metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise bad_request(
                f"Invalid 'metadata': keys are at most {MAX_METADATA_KEY} characters, values at most {MAX_METADATA_VALUE}.",
                "metadata",
            )
    return params


@post(openai_paths("batches"), status_code=200)
async def create_batch(request: Request) -> Response:
    principal = await caller_of(request)
    params = _parsed(await request.body())
    batches = batches_of(request)
    file = await batches.files.find(params.input_file_id, principal.caller)
    if file is None:
        raise GatewayError(
            404,
            f"No file found with id '{params.input_file_id}'.",
            ErrorType.INVALID_REQUEST,
            "not_found",
            "input_file_id",
        )
    if file.purpose != FilePurpose.BATCH:
        raise bad_request(
            f"The file {file.id} has purpose {file.purpose!r}; a batch's input must have purpose 'batch'.", "input_file_id"
        )
    caller = principal.caller
    created = now()
    record = BatchRecord(
        id=f"batch_{secrets.token_hex(12)}",
        endpoint=params.endpoint,
        input_file_id=file.id,
        completion_window=params.completion_window,
        created_at=created,
        expires_at=created + WINDOW_SECONDS[params.completion_window],
        key_hash=caller.key_hash,
        user_id=caller.user_id,
        team_id=caller.team_id,
        metadata=params.metadata,
        total=file.lines,
    )
    await batches.store.create(record)
    batches.runner.wake()
    return _json(batch_object(record))


async def _owned(request: Request, batch_id: str) -> BatchRecord:
    principal = await caller_of(request)
    found = await batches_of(request).store.get(batch_id)
    if found is None or not owned(found[0].key_hash, found[0].user_id, found[0].team_id, principal.caller):
        raise not_found("batch", batch_id)
    return found[0]


@get(openai_paths("batches/{batch_id:str}"))
async def retrieve_batch(request: Request, batch_id: str) -> Response:
    return _json(batch_object(await _owned(request, batch_id)))


@post(openai_paths("batches/{batch_id:str}/cancel"), status_code=200)
async def cancel_batch(request: Request, batch_id: str) -> Response:
    record = await _owned(request, batch_id)
    if record.status not in (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING, BatchStatus.CANCELLED):
        raise GatewayError(
            409, f"Cannot cancel a batch with status '{record.status}'.", ErrorType.INVALID_REQUEST, "batch_not_cancellable"
        )
    at = now()

    def cancelling(r: BatchRecord) -> BatchRecord | None:
        if r.status not in (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS):
            return None
        return msgspec.structs.replace(r, status=BatchStatus.CANCELLING, cancelling_at=at)

    batches = batches_of(request)
    changed = await batches.store.change(record.id, cancelling)
    batches.runner.wake()
    return _json(batch_object(changed or record))


@get(openai_paths("batches"))
async def list_batches(request: Request) -> Response:
    principal = await caller_of(request)
    params = request.query_params
    limit = limit_of(params.get("limit"), 20, 100)
    records = [r for r in await batches_of(request).store.all() if owned(r.key_hash, r.user_id, r.team_id, principal.caller)]
    records.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return _json(page([batch_object(r) for r in records], params.get("after"), limit))


ROUTES = [create_batch, list_batches, retrieve_batch, cancel_batch]
