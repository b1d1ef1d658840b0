"""A batch input file (JSONL) checked once, when it is uploaded: each line is
`{"custom_id", "method": "POST", "url", "body"}`, the custom ids unique, the urls among the batch
endpoints, at most `MAX_REQUESTS` lines. An invalid file is a 400 naming its first bad line."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.errors import GatewayError
from llmgw.contracts import BATCH_ENDPOINTS, ErrorCode, ErrorType

MAX_REQUESTS = 50_000  # requests in one batch (OpenAI's limit)
MAX_FILE_BYTES = 200 * 1024 * 1024  # a batch input file (OpenAI's limit)
MAX_CUSTOM_ID = 512


class BatchInputLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    custom_id: str
    method: str
    url: str
    body: dict[str, Any]


_line_decoder = msgspec.json.Decoder(BatchInputLine)


def invalid_file(message: str) -> GatewayError:
    return GatewayError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, "file")


def split_lines(data: bytes) -> list[bytes]:
    """The file's lines, blank ones (a trailing newline) left out."""
    return [line for line in data.split(b"\n") if line.strip()]


def parse_line(raw: bytes) -> BatchInputLine:
    return _line_decoder.decode(raw)


def check_batch_file(data: bytes) -> int:
    """The number of requests in a valid batch input file; a 400 otherwise."""
    if len(data) > MAX_FILE_BYTES:
        raise invalid_file(f"A batch input file may be at most {MAX_FILE_BYTES} bytes; this one is {len(data)}.")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_file("The batch input file must be UTF-8 JSONL.") from None
    lines = split_lines(data)
    if not lines:
        raise invalid_file("The batch input file has no requests.")
    if len(lines) > MAX_REQUESTS:
        raise invalid_file(f"A batch may hold at most {MAX_REQUESTS} requests; this file has {len(lines)}.")
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        try:
            line = parse_line(raw)
        except msgspec.ValidationError as exc:
            raise invalid_file(
                f"Line {number} of the batch input file is not a request: {exc}. Each line must be "
                '{"custom_id": ..., "method": "POST", "url": ..., "body": {...}}.'
            ) from None
        except msgspec.DecodeError:
            raise invalid_file(f"Line {number} of the batch input file is not valid JSON.") from None
        if not line.custom_id or len(line.custom_id) > MAX_CUSTOM_ID:
            raise invalid_file(f"Line {number}: `custom_id` must be 1 to {MAX_CUSTOM_ID} characters.")
        if line.custom_id in seen:
            raise invalid_file(f"Line {number}: the custom_id {line.custom_id!r} is used twice; each must be unique.")
        seen.add(line.custom_id)
        if line.method != "POST":
            raise invalid_file(f"Line {number}: `method` must be POST, got {line.method!r}.")
        if line.url not in BATCH_ENDPOINTS:
            raise invalid_file(f"Line {number}: `url` must be one of {', '.join(BATCH_ENDPOINTS)}, got {line.url!r}.")
    return len(lines)
