"""The Files and Batch APIs with the official openai SDK: a JSONL file uploaded, a batch run line by
line through the edge's pipeline (one usage row per line), its output and error files in OpenAI's
format; lines past a key's budget in the error file; cancel; files and batches only their owners
see."""

from __future__ import annotations

import io
import json

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

ENDED = ("completed", "failed", "cancelled", "expired")


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    env = {"LLMGW_BATCH_CONCURRENCY": "2", "LLMGW_BATCH_POLL_SECONDS": "0.2"}
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2ebatches", upstream, env).start()
    yield s
    s.stop()


def new_key(stack: Stack, **params) -> str:
    response = httpx.post(
        f"{stack.base_url}/key/generate", headers={"authorization": f"Bearer {MASTER_KEY}"}, json=params, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["key"]


def client_for(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)


def chat_line(custom_id: str, model: str = "gpt-4", max_tokens: int = 5) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": f"say {custom_id}"}], "max_tokens": max_tokens}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def upload(client: openai.OpenAI, lines: list[dict]):
    return client.files.create(file=("requests.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")


def until_ended(client: openai.OpenAI, batch_id: str, timeout: float = 90):
    def ended():
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status in ENDED else None

    return eventually_sync(ended, f"batch {batch_id} to end", timeout=timeout, interval=0.3)


def file_lines(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).content.splitlines() if line.strip()]


def usage_by_line(stack: Stack, batch_id: str, expected: int, timeout: float = 30) -> dict[str, int]:
    """Usage rows of the batch's lines (their client_request_id is `<batch id>-<index>`), counted per line."""
    sql = (
        "SELECT client_request_id, count() AS n FROM usage FINAL"
        " WHERE startsWith(client_request_id, {p:String}) GROUP BY client_request_id"
    )

    def landed():
        rows = stack.query(sql, {"p": f"{batch_id}-"})
        return rows if sum(r["n"] for r in rows) >= expected else None

    rows = eventually_sync(landed, f"{expected} usage rows of {batch_id}", timeout=timeout, interval=0.3)
    return {r["client_request_id"]: r["n"] for r in rows}


def batch_spend(stack: Stack, batch_id: str) -> float:
    """What the batch's usage rows cost, in USD."""
    sql = "SELECT toFloat64(sum(cost)) AS cost FROM usage FINAL WHERE startsWith(client_request_id, {p:String})"
    return float(stack.query(sql, {"p": f"{batch_id}-"})[0]["cost"])


def test_a_batch_runs_every_line_once_with_one_usage_row_each(stack: Stack) -> None:
    client = stack.client()
    lines = [chat_line(f"line-{i}") for i in range(6)] + [chat_line("bad-model", model="no-such-model")]
    file = upload(client, lines)
    assert file.purpose == "batch" and file.status == "processed" and file.bytes == len(jsonl(lines))
    assert client.files.retrieve(file.id).filename == "requests.jsonl"
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"job": "nightly"}
    )
    assert batch.status in ("validating", "in_progress") and batch.metadata["job"] == "nightly"
    done = until_ended(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts.total == 7 and done.request_counts.completed == 6 and done.request_counts.failed == 1
    assert done.completed_at and done.in_progress_at and done.finalizing_at
    output = file_lines(client, done.output_file_id)
    assert sorted(o["custom_id"] for o in output) == [f"line-{i}" for i in range(6)]
    for o in output:
        assert o["response"]["status_code"] == 200 and o["error"] is None
        assert o["response"]["body"]["object"] == "chat.completion"
        assert o["response"]["request_id"].startswith("req-")
    errors = file_lines(client, done.error_file_id)
    assert [e["custom_id"] for e in errors] == ["bad-model"]
    assert errors[0]["response"]["status_code"] == 404
    assert errors[0]["response"]["body"]["error"]["code"] == "model_not_found"
    # One usage row per line (the bad model's is the edge's refusal), each line run once.
    rows = usage_by_line(stack, batch.id, 7)
    assert rows == {f"{batch.id}-{i}": 1 for i in range(7)}
    spend = batch_spend(stack, batch.id)
    assert done.model_extra["spend"] == pytest.approx(spend, rel=1e-6, abs=1e-12)
    assert float(done.metadata["llmgw_spend"]) == pytest.approx(spend, rel=1e-6, abs=1e-12)
    assert done.usage is not None and done.usage.total_tokens > 0
    assert batch.id in [b.id for b in client.batches.list()]
    assert {file.id, done.output_file_id, done.error_file_id} <= {f.id for f in client.files.list()}


def test_files_api_refuses_bad_uploads_in_openai_shapes(stack: Stack) -> None:
    client = stack.client()
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.create(file=("x.jsonl", io.BytesIO(b"{not json}\n")), purpose="batch")
    assert bad.value.body["param"] == "file" and "Line 1" in bad.value.body["message"]
    with pytest.raises(openai.BadRequestError) as missing:
        upload(client, [{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"}])
    assert "Line 1" in missing.value.body["message"]
    with pytest.raises(openai.BadRequestError) as twice:
        upload(client, [chat_line("same"), chat_line("same")])
    assert "twice" in twice.value.body["message"]
    with pytest.raises(openai.BadRequestError) as url:
        upload(client, [{**chat_line("a"), "url": "/v1/images/generations"}])
    assert "url" in url.value.body["message"]
    with pytest.raises(openai.BadRequestError) as purpose:
        client.files.create(file=("x.jsonl", io.BytesIO(jsonl([chat_line("a")]))), purpose="fine-tune")
    assert purpose.value.body["param"] == "purpose"
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-doesnotexist")
    file = upload(client, [chat_line("a")])
    with pytest.raises(openai.BadRequestError) as endpoint:
        client.batches.create(input_file_id=file.id, endpoint="/v1/images/generations", completion_window="24h")  # type: ignore[arg-type]
    assert endpoint.value.body["param"] == "endpoint"
    with pytest.raises(openai.BadRequestError) as window:
        client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="1h")  # type: ignore[arg-type]
    assert window.value.body["param"] == "completion_window"
    deleted = client.files.delete(file.id)
    assert deleted.deleted and deleted.id == file.id
    with pytest.raises(openai.NotFoundError):
        client.files.content(file.id)


def test_a_line_for_another_endpoint_fails_the_batch_in_validation(stack: Stack) -> None:
    client = stack.client()
    file = upload(
        client,
        [chat_line("a"), {"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": {"model": "gpt-4", "input": "x"}}],
    )
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = until_ended(client, batch.id)
    assert done.status == "failed" and done.errors is not None
    assert done.errors.data[0].line == 2 and done.errors.data[0].code == "invalid_url"
