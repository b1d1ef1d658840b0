"""OpenAI's Files and Batch APIs in the fake upstream (fake_openai.py), following the public API
reference:
  https://platform.openai.com/docs/api-reference/files/create          (POST /v1/files, multipart, purpose)
  https://platform.openai.com/docs/api-reference/files/retrieve-contents (GET /v1/files/{id}/content)
  https://platform.openai.com/docs/api-reference/batch/create          (POST /v1/batches)
  https://platform.openai.com/docs/api-reference/batch/retrieve        (GET /v1/batches/{id})
  https://platform.openai.com/docs/api-reference/batch/cancel          (POST /v1/batches/{id}/cancel)
  https://platform.openai.com/docs/api-reference/batch/list            (GET /v1/batches)
  https://platform.openai.com/docs/api-reference/batch/request-output  (the output / error file lines)

A batch is `in_progress` once created and `completed` `delay` seconds later (1 s, or what
`POST /_fake/batch_delay {"seconds": x}` set), its lines answered as the fake's chat completions
would be (same token accounting: fake_openai_payloads.py); a line naming a `fake-error-<status>`
model gets that status in the error file. A cancelled batch is `cancelling`, then `cancelled` (no line run) at the next look.
Stats: `batches_created`, `batch_polls`, `batch_cancels`, `batch_files`.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from bench import fake_openai_payloads as payloads

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_NAME = re.compile(rb'name="([^"]*)"')
_FILENAME = re.compile(rb'filename="([^"]*)"')


def multipart_fields(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """A multipart/form-data body's fields: name -> (value, filename or None)."""
    found = _BOUNDARY.search(content_type)
    if found is None:
        return {}
    delimiter = b"--" + found.group(1).encode()
    out: dict[str, tuple[bytes, str | None]] = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        name = _NAME.search(head)
        if name is None:
            continue
        filename = _FILENAME.search(head)
        out[name.group(1).decode()] = (value.removesuffix(b"\r\n"), filename.group(1).decode() if filename else None)
    return out


class FakeBatches:
    def __init__(self) -> None:
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.delay = 1.0
        self.create_delay = 0.0  # seconds POST /v1/batches takes (a submit an edge can die during)
        self.created = 0
        self.polls = 0
        self.cancels = 0

    def stats(self) -> dict[str, int]:
        return {
            "batches_created": self.created,
            "batch_polls": self.polls,
            "batch_cancels": self.cancels,
            "batch_files": len(self.files),
        }

    def reset(self) -> None:
        self.created = self.polls = self.cancels = 0

    def _file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = f"file-{secrets.token_hex(12)}"
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        self.files[file_id] = (record, data)
        return record

    def upload(self, content_type: str, body: bytes) -> tuple[int, bytes]:
        fields = multipart_fields(content_type, body)
        purpose = fields.get("purpose", (b"", None))[0].decode()
        if "file" not in fields or not purpose:
            return 400, payloads.error_body("'file' and 'purpose' are required.", "invalid_request_error", "file")
        data, filename = fields["file"]
        return 200, payloads.encode_json(self._file(data, filename or "upload.jsonl", purpose))

    def content(self, file_id: str) -> tuple[int, bytes]:
        found = self.files.get(file_id)
        if found is None:
            return 404, payloads.error_body(f"No such File object: {file_id}", "invalid_request_error", "id")
        return 200, found[1]

    def create(self, body: dict[str, Any]) -> tuple[int, bytes]:
        file_id = body.get("input_file_id")
        if file_id not in self.files:
            return 400, payloads.error_body(f"No such file: {file_id}", "invalid_request_error", "input_file_id")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return 400, payloads.error_body("Unsupported endpoint or window.", "invalid_request_error", "endpoint")
        now = int(time.time())
        batch = {
            "id": f"batch_{secrets.token_hex(12)}",
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": file_id,
            "completion_window": "24h",
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": now,
            "expires_at": now + 86400,
            "completed_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "_due": time.time() + self.delay,
        }
        self.batches[batch["id"]] = batch
        self.created += 1
        return 200, self._public(batch)

    def listed(self) -> tuple[int, bytes]:
        """GET /v1/batches: the newest first (the first page of up to 100)."""
        data = sorted(self.batches.values(), key=lambda b: b["_due"], reverse=True)[:100]
        public = [payloads.decode_json(self._public(b)) for b in data]
        page = {
            "object": "list",
            "data": public,
            "first_id": public[0]["id"] if public else None,
            "last_id": public[-1]["id"] if public else None,
            "has_more": len(self.batches) > 100,
        }
        return 200, payloads.encode_json(page)

    def retrieve(self, batch_id: str) -> tuple[int, bytes]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return 404, payloads.error_body(f"No such batch: {batch_id}", "invalid_request_error", "batch_id")
        self.polls += 1
        if batch["status"] == "cancelling":
            batch.update(status="cancelled", cancelled_at=int(time.time()))
        if batch["status"] == "in_progress" and time.time() >= batch["_due"]:
            self._complete(batch)
        return 200, self._public(batch)

    def cancel(self, batch_id: str) -> tuple[int, bytes]:
        """`cancelling`, then (at the next look) `cancelled` with no line run."""
        batch = self.batches.get(batch_id)
        if batch is None:
            return 404, payloads.error_body(f"No such batch: {batch_id}", "invalid_request_error", "batch_id")
        if batch["status"] == "in_progress":
            self.cancels += 1
            batch.update(status="cancelling", cancelling_at=int(time.time()))
        return 200, self._public(batch)

    @staticmethod
    def _public(batch: dict[str, Any]) -> bytes:
        return payloads.encode_json({k: v for k, v in batch.items() if not k.startswith("_")})

    def _complete(self, batch: dict[str, Any]) -> None:
        out: list[bytes] = []
        errors: list[bytes] = []
        for raw in self.files[batch["input_file_id"]][1].splitlines():
            if not raw.strip():
                continue
            line = payloads.decode_json(raw)
            body = line.get("body") or {}
            model = str(body.get("model", ""))
            request_id = f"req_{secrets.token_hex(12)}"
            status = int(model.removeprefix("fake-error-")) if model.startswith("fake-error-") else 200
            if status == 200:
                prompt_tokens, cached = payloads.count_prompt(body.get("messages"))
                n, finish_reason = payloads.completion_length(body)
                usage = payloads.chat_usage(prompt_tokens, n, cached)
                answer = payloads.decode_json(payloads.chat_completion(model, n, finish_reason, usage))
            else:
                answer = payloads.decode_json(payloads.error_body(f"fake error {status}", "invalid_request_error"))
            result = {
                "id": f"batch_req_{secrets.token_hex(12)}",
                "custom_id": line.get("custom_id"),
                "response": {"status_code": status, "request_id": request_id, "body": answer},
                "error": None,
            }
            (out if status == 200 else errors).append(payloads.encode_json(result))
        batch["request_counts"] = {"total": len(out) + len(errors), "completed": len(out), "failed": len(errors)}
        if out:
            batch["output_file_id"] = self._file(b"\n".join(out) + b"\n", "batch_output.jsonl", "batch_output")["id"]
        if errors:
            batch["error_file_id"] = self._file(b"\n".join(errors) + b"\n", "batch_errors.jsonl", "batch_output")["id"]
        now = int(time.time())
        batch.update(status="completed", finalizing_at=now, completed_at=now)
