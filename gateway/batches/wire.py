"""The Batch API's shapes: OpenAI's batch object, and the lines of its output and error files
(`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`)."""

from __future__ import annotations

from typing import Any

import msgspec

from llmgw.contracts import BatchRecord

_encoder = msgspec.json.Encoder()


def batch_object(record: BatchRecord) -> dict[str, Any]:
    """OpenAI's batch object. What the gateway adds: `spend` (USD the lines run so far cost, as
    their usage rows say), also in `metadata["llmgw_spend"]` for SDKs that drop unknown fields."""
    metadata = dict(record.metadata or {})
    metadata["llmgw_spend"] = f"{record.spend:.10f}".rstrip("0").rstrip(".") or "0"
    return {
        "id": record.id,
        "object": "batch",
        "endpoint": record.endpoint,
        "errors": {"object": "list", "data": record.errors} if record.errors else None,
        "input_file_id": record.input_file_id,
        "completion_window": record.completion_window,
        "status": record.status,
        "output_file_id": record.output_file_id,
        "error_file_id": record.error_file_id,
        "created_at": record.created_at,
        "in_progress_at": record.in_progress_at,
        "expires_at": record.expires_at,
        "finalizing_at": record.finalizing_at,
        "completed_at": record.completed_at,
        "failed_at": record.failed_at,
        "expired_at": record.expired_at,
        "cancelling_at": record.cancelling_at,
        "cancelled_at": record.cancelled_at,
        "request_counts": {"total": record.total, "completed": record.completed, "failed": record.failed},
        "usage": {
            "input_tokens": record.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": record.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": record.input_tokens + record.output_tokens,
        },
        "metadata": metadata,
        "spend": record.spend,
    }


def response_line(line_id: str, custom_id: str, status: int, request_id: str, body: Any) -> str:
    """A line that got an answer (any status: a 4xx or 5xx goes to the error file)."""
    return _encoder.encode(
        {
            "id": line_id,
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": request_id, "body": body},
            "error": None,
        }
    ).decode()


def error_line(line_id: str, custom_id: str, code: str, message: str) -> str:
    """A line that got no answer (interrupted, expired)."""
    return _encoder.encode(
        {"id": line_id, "custom_id": custom_id, "response": None, "error": {"code": code, "message": message}}
    ).decode()
