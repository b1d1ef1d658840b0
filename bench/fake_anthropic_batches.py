"""Anthropic's Message Batches API in the fake upstream (fake_anthropic.py), following the public
API reference:
  https://docs.anthropic.com/en/api/creating-message-batches   (POST /v1/messages/batches, `requests: [{custom_id, params}]`)
  https://docs.anthropic.com/en/api/retrieving-message-batches (GET /v1/messages/batches/{id}: the message_batch object)
  https://docs.anthropic.com/en/api/canceling-message-batches  (POST /v1/messages/batches/{id}/cancel)
  https://docs.anthropic.com/en/api/retrieving-message-batch-results (GET `results_url`: JSONL of
                                                                   {custom_id, result: {type: succeeded|errored|canceled|expired, ...}})

A batch is `in_progress` once created and `ended` `delay` seconds later (1 s, or what
`POST /_fake/batch_delay {"seconds": x}` set); each request is answered as POST /v1/messages would
answer it (same checks, same token accounting: fake_anthropic_payloads.py), a refused one or one
naming a fault model as `errored`. A cancelled batch is `canceling`, then `ended` at the next
look, each request `canceled`. Stats: `batches_created`, `batch_polls`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from bench.fake_anthropic_payloads import Invalid, check_request, count_usage, message_json, new_id, plan_reply
from bench.fake_openai_payloads import encode_json

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error"}


def _rfc3339(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeMessageBatches:
    def __init__(self, faults: dict[str, tuple[int, str, str, dict[str, str]]]) -> None:
        self.faults = faults
        self.batches: dict[str, dict[str, Any]] = {}
        self.delay = 1.0
        self.created = 0
        self.polls = 0
        self.cancels = 0

    def stats(self) -> dict[str, int]:
        return {"batches_created": self.created, "batch_polls": self.polls, "batch_cancels": self.cancels}

    def reset(self) -> None:
        self.created = self.polls = self.cancels = 0

    def cancel(self, batch_id: str, root: str) -> tuple[int, dict[str, Any]]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return 404, {"type": "not_found_error", "message": f"Message batch {batch_id} not found"}
        if batch["_ended"] is None and not batch.get("_canceling"):
            self.cancels += 1
            batch["_canceling"] = time.time()
        return 200, self._public(batch, root)

    def create(self, body: Any) -> tuple[int, dict[str, Any]]:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return 400, {"type": "invalid_request_error", "message": "requests: Field required"}
        for item in requests:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("custom_id"), str)
                or not isinstance(item.get("params"), dict)
            ):
                return 400, {"type": "invalid_request_error", "message": "requests: each needs custom_id and params"}
        now = time.time()
        batch = {"id": new_id("msgbatch"), "_requests": requests, "_created": now, "_due": now + self.delay, "_ended": None}
        self.batches[batch["id"]] = batch
        self.created += 1
        return 200, self._public(batch, "")

    def retrieve(self, batch_id: str, root: str) -> tuple[int, dict[str, Any]]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return 404, {"type": "not_found_error", "message": f"Message batch {batch_id} not found"}
        self.polls += 1
        if batch["_ended"] is None and (batch.get("_canceling") or time.time() >= batch["_due"]):
            batch["_ended"] = time.time()
        return 200, self._public(batch, root)

    def results(self, batch_id: str) -> tuple[int, bytes]:
        batch = self.batches.get(batch_id)
        if batch is None or batch["_ended"] is None:
            return 404, b""
        if batch.get("_canceling"):
            lines = [{"custom_id": item["custom_id"], "result": {"type": "canceled"}} for item in batch["_requests"]]
        else:
            lines = [self._result(item) for item in batch["_requests"]]
        return 200, b"".join(encode_json(line) + b"\n" for line in lines)

    def _result(self, item: dict[str, Any]) -> dict[str, Any]:
        params = item["params"]
        model = params.get("model")
        fault = self.faults.get(model) if isinstance(model, str) else None
        if fault is not None:
            error = {"type": fault[1], "message": fault[2]}
            return {"custom_id": item["custom_id"], "result": {"type": "errored", "error": {"type": "error", "error": error}}}
        try:
            checked = check_request(params)
        except Invalid as exc:
            error = {"type": "invalid_request_error", "message": str(exc)}
            return {"custom_id": item["custom_id"], "result": {"type": "errored", "error": {"type": "error", "error": error}}}
        message = message_json(str(model), plan_reply(checked), count_usage(checked))
        return {"custom_id": item["custom_id"], "result": {"type": "succeeded", "message": message}}

    @staticmethod
    def _public(batch: dict[str, Any], root: str) -> dict[str, Any]:
        ended = batch["_ended"]
        total = len(batch["_requests"])
        return {
            "id": batch["id"],
            "type": "message_batch",
            "processing_status": "ended" if ended is not None else "canceling" if batch.get("_canceling") else "in_progress",
            "request_counts": {
                "processing": 0 if ended is not None else total,
                "succeeded": total if ended is not None and not batch.get("_canceling") else 0,
                "errored": 0,
                "canceled": total if ended is not None and batch.get("_canceling") else 0,
                "expired": 0,
            },
            "ended_at": _rfc3339(ended),
            "created_at": _rfc3339(batch["_created"]),
            "expires_at": _rfc3339(batch["_created"] + 86400),
            "archived_at": None,
            "cancel_initiated_at": _rfc3339(batch.get("_canceling")),
            "results_url": f"{root}/v1/messages/batches/{batch['id']}/results" if ended is not None else None,
        }
