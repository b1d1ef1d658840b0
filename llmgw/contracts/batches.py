"""The Files and Batch APIs' records (JetStream KV and Object Store).

A file's bytes are an object of the files object store under the file's id; its `FileRecord` (who
owns it, its size, purpose and line count) is in the files KV bucket under the same id. A batch is
a `BatchRecord` in the batches bucket under `batch.<id>`; until it ends, its `BatchLease` (which
edge runs it, until when) is in the batch runs bucket under its id; each line it ran is a `BatchLine` in the batch lines bucket under
`<batch id>.<line index>`, created (never overwritten) before the line is sent, so a line is sent
at most once whoever runs the batch after a restart.
"""

from __future__ import annotations

from typing import Any

import msgspec


class FilePurpose:
    BATCH = "batch"
    BATCH_OUTPUT = "batch_output"


class BatchStatus:
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    # Not yet over: a runner takes these.
    OPEN = (VALIDATING, IN_PROGRESS, FINALIZING, CANCELLING)


class LineState:
    SENT = "sent"  # claimed and sent into the pipeline; no result yet
    DONE = "done"  # its result is in the record


# The endpoints a batch may name, as OpenAI names them.
BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/completions")


class FileRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An uploaded (or a batch's output) file: OpenAI's file object and its owners. Only the key,
    the user or the team that made it may read it."""

    id: str  # `file-...`: its key in the files bucket and its object's name in the object store
    bytes: int
    created_at: int
    filename: str
    purpose: str  # FilePurpose
    key_hash: str
    user_id: str | None = None
    team_id: str | None = None
    lines: int = 0  # the requests in a batch input file
    expires_at: int | None = None


class BatchRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A batch: OpenAI's batch object's fields, its owners, and what the gateway adds."""

    id: str  # `batch_...`
    endpoint: str
    input_file_id: str
    completion_window: str
    created_at: int
    expires_at: int
    key_hash: str
    user_id: str | None = None
    team_id: str | None = None
    status: str = BatchStatus.VALIDATING
    metadata: dict[str, str] | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    spend: float = 0.0  # USD the lines run so far cost (their usage rows' cost)
    input_tokens: int = 0
    output_tokens: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None  # OpenAI's `errors.data` (a batch that failed validation)
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    # Handed to the provider's own batch API (gateway/batches/handoff.py): the deployment it went
    # to, the claim written before the submit (the edge that submits, when), then the provider's
    # batch id, recorded before the first poll, so a restarted edge polls it and never submits again.
    handoff_deployment: str | None = None
    handoff_claim: str | None = None
    provider_batch_id: str | None = None


class BatchLease(msgspec.Struct, frozen=True, kw_only=True):
    """Which edge runs a batch, until when (renewed while it runs; a lapsed lease is taken over)."""

    owner: str
    expires_at: float


class BatchLine(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One line of a batch: sent (at most once), then done with its result line."""

    state: str  # LineState
    request_id: str = ""  # the x-request-id it was sent with (also its usage row's client_request_id)
    ok: bool = False  # its result goes to the output file (else to the error file)
    result: str = ""  # the output or error file's line (JSON, without its newline)
    # The result is larger than a KV message: it is in the files object store, as `result_object`.
    apart: bool = False
    cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0


_encoder = msgspec.json.Encoder()
encode_record = _encoder.encode
decode_file_record = msgspec.json.Decoder(FileRecord).decode
decode_batch_record = msgspec.json.Decoder(BatchRecord).decode
decode_batch_lease = msgspec.json.Decoder(BatchLease).decode
decode_batch_line = msgspec.json.Decoder(BatchLine).decode


def batch_key(batch_id: str) -> str:
    return f"batch.{batch_id}"


def line_key(batch_id: str, index: int) -> str:
    return f"{batch_id}.{index}"


def result_object(batch_id: str, index: int) -> str:
    """The object (files object store) holding a line's result too large for its KV record."""
    return f"{batch_id}.{index}.result"


__all__ = [
    "BATCH_ENDPOINTS",
    "BatchLease",
    "BatchLine",
    "BatchRecord",
    "BatchStatus",
    "FilePurpose",
    "FileRecord",
    "LineState",
    "batch_key",
    "decode_batch_lease",
    "decode_batch_line",
    "decode_batch_record",
    "decode_file_record",
    "encode_record",
    "line_key",
    "result_object",
]
