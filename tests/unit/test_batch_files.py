"""A batch input file is checked line by line when it is uploaded, and a batch's answers are
written in OpenAI's shapes (the batch object, the output and error lines)."""

from __future__ import annotations

import json

import pytest

from gateway.batches.jsonl import MAX_REQUESTS, check_batch_file
from gateway.batches.wire import batch_object, error_line, response_line
from gateway.errors import GatewayError
from llmgw.contracts import BatchRecord, BatchStatus


def line(custom_id: str = "a", url: str = "/v1/chat/completions", **extra: object) -> bytes:
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body, **extra}).encode()


def refused(data: bytes) -> str:
    with pytest.raises(GatewayError) as err:
        check_batch_file(data)
    assert err.value.status == 400 and err.value.param == "file"
    return err.value.message


def test_a_valid_file_counts_its_requests_and_a_trailing_newline_is_no_line() -> None:
    assert check_batch_file(line("a") + b"\n" + line("b", "/v1/embeddings") + b"\n\n") == 2


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "no requests"),
        (b"\xff\xfe", "UTF-8"),
        (b"{not json", "Line 1 of the batch input file is not valid JSON"),
        (line("a") + b"\n[1, 2]", "Line 2"),
        (json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"}).encode(), "Line 1"),
        (line("a", extra_field=1), "Line 1"),
        (line(""), "custom_id"),
        (line("a" * 513), "custom_id"),
        (line("a") + b"\n" + line("a"), "used twice"),
        (line("a", "/v1/images/generations"), "`url` must be one of"),
        (line("a").replace(b'"POST"', b'"GET"'), "`method` must be POST"),
    ],
)
def test_a_bad_file_is_a_400_naming_its_first_bad_line(data: bytes, says: str) -> None:
    assert says in refused(data)


def test_at_most_fifty_thousand_requests() -> None:
    data = b"\n".join(line(f"c{i}") for i in range(MAX_REQUESTS + 1))
    assert f"at most {MAX_REQUESTS}" in refused(data)


def test_the_batch_object_is_openais_with_the_spend_so_far() -> None:
    record = BatchRecord(
        id="batch_1",
        endpoint="/v1/embeddings",
        input_file_id="file-1",
        completion_window="24h",
        created_at=100,
        expires_at=100 + 86400,
        key_hash="k",
        status=BatchStatus.IN_PROGRESS,
        metadata={"job": "x"},
        total=3,
        completed=1,
        failed=1,
        spend=0.00012,
        input_tokens=7,
        output_tokens=5,
        in_progress_at=101,
    )
    out = batch_object(record)
    assert out["object"] == "batch" and out["status"] == "in_progress"
    assert out["request_counts"] == {"total": 3, "completed": 1, "failed": 1}
    assert out["usage"]["total_tokens"] == 12 and out["errors"] is None
    assert out["spend"] == 0.00012 and out["metadata"] == {"job": "x", "llmgw_spend": "0.00012"}
    assert "key_hash" not in out and "user_id" not in out  # the owners stay the gateway's
    assert batch_object(BatchRecord(**{**_fields(record), "spend": 0.0}))["metadata"]["llmgw_spend"] == "0"


def _fields(record: BatchRecord) -> dict:
    return {f: getattr(record, f) for f in record.__struct_fields__}


def test_output_and_error_lines_are_openais() -> None:
    answered = json.loads(response_line("batch_req_1", "a", 200, "req-1", {"object": "chat.completion"}))
    assert answered == {
        "id": "batch_req_1",
        "custom_id": "a",
        "response": {"status_code": 200, "request_id": "req-1", "body": {"object": "chat.completion"}},
        "error": None,
    }
    unanswered = json.loads(error_line("batch_req_2", "b", "batch_expired", "too late"))
    assert unanswered == {
        "id": "batch_req_2",
        "custom_id": "b",
        "response": None,
        "error": {"code": "batch_expired", "message": "too late"},
    }
