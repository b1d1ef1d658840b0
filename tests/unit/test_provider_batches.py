"""Batches handed to a provider's batch API: the bus messages, the batch price, the results lines
of OpenAI and Anthropic as the worker reads them, and the fakes' batch lifecycle."""

from __future__ import annotations

import json

import msgspec

from bench.fake_anthropic import FAULTS as ANTHROPIC_FAULTS
from bench.fake_anthropic_batches import FakeMessageBatches
from bench.fake_openai_batches import FakeBatches, multipart_fields
from llmgw.config import Deployment
from llmgw.contracts import (
    Caller,
    ProviderBatchAnswer,
    ProviderBatchCall,
    ProviderLineResult,
    decode_provider_batch_answer,
    decode_provider_batch_call,
    encode_provider_batch,
    provider_line_id,
    provider_request_id,
)
from llmgw.prices import batch_price_factor
from workers.provider_batch_apis import LineOutcome, results_page
from workers.providers.anthropic.batches import _outcome as anthropic_outcome
from workers.providers.openai_batches import _outcome as openai_outcome

ANTHROPIC = Deployment(id="d1", model_name="claude", provider="anthropic", upstream_model="claude-x")


def test_calls_and_answers_survive_the_bus() -> None:
    call = ProviderBatchCall(op="results", deployment_id="d", batch_id="batch_1", caller=Caller(key_hash="h"), lines=[b"{}"])
    assert decode_provider_batch_call(encode_provider_batch(call)) == call
    answer = ProviderBatchAnswer(ok=True, results=[ProviderLineResult(index=2, status=200, body=b'{"a":1}', cost=0.5)])
    assert decode_provider_batch_answer(encode_provider_batch(answer)) == answer
    assert provider_line_id("batch_1", 3) == "line-3"
    assert provider_request_id("batch_1", 3) == "batch_1-3-provider"


def test_openai_and_anthropic_batches_cost_half() -> None:
    assert batch_price_factor("openai") == 0.5 and batch_price_factor("anthropic") == 0.5
    assert batch_price_factor("gemini") == 1.0


def test_an_openai_output_line_keeps_its_body_and_usage() -> None:
    body = {"id": "chatcmpl-1", "object": "chat.completion", "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
    raw = json.dumps({"id": "r", "custom_id": "line-4", "response": {"status_code": 200, "body": body}, "error": None})
    line = openai_outcome(raw.encode())
    assert line is not None and (line.index, line.status) == (4, 200)
    assert json.loads(line.body) == body
    assert line.usage is not None and (line.usage.prompt_tokens, line.usage.completion_tokens) == (7, 3)
    failed = openai_outcome(
        json.dumps({"custom_id": "line-1", "response": None, "error": {"code": "x", "message": "m"}}).encode()
    )
    assert failed is not None and failed.status == 500 and json.loads(failed.body)["error"]["code"] == "x"
    assert openai_outcome(b'{"custom_id": "someone-else"}') is None


def test_an_anthropic_result_becomes_a_chat_completion_or_an_openai_error() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "w0 w1"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
    ok = anthropic_outcome(
        json.dumps({"custom_id": "line-0", "result": {"type": "succeeded", "message": message}}).encode(), ANTHROPIC
    )
    assert ok is not None and ok.status == 200
    completion = json.loads(ok.body)
    assert completion["object"] == "chat.completion" and completion["choices"][0]["message"]["content"] == "w0 w1"
    assert ok.usage is not None and (ok.usage.prompt_tokens, ok.usage.completion_tokens) == (5, 2)
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "messages: bad"}}
    bad = anthropic_outcome(
        json.dumps({"custom_id": "line-1", "result": {"type": "errored", "error": error}}).encode(), ANTHROPIC
    )
    assert bad is not None and bad.status == 400 and bad.usage is None
    assert json.loads(bad.body)["error"]["message"].startswith("messages: bad")
    gone = anthropic_outcome(b'{"custom_id": "line-2", "result": {"type": "expired"}}', ANTHROPIC)
    assert gone is not None and gone.status >= 500


def test_the_fake_openai_batch_completes_after_its_delay() -> None:
    fake = FakeBatches()
    fake.delay = 0.0
    line = {
        "custom_id": "c1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 2},
    }
    form = (
        b'--XX\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
        + json.dumps(line).encode()
        + b"\n\r\n--XX--\r\n"
    )
    assert multipart_fields("multipart/form-data; boundary=XX", form)["purpose"] == (b"batch", None)
    status, file = fake.upload("multipart/form-data; boundary=XX", form)
    assert status == 200
    status, created = fake.create(
        {"input_file_id": json.loads(file)["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    )
    batch = json.loads(fake.retrieve(json.loads(created)["id"])[1])
    assert batch["status"] == "completed" and batch["request_counts"] == {"total": 1, "completed": 1, "failed": 0}
    out = json.loads(fake.content(batch["output_file_id"])[1])
    assert out["custom_id"] == "c1" and out["response"]["body"]["usage"]["completion_tokens"] == 2


def test_the_fake_message_batch_ends_with_a_results_url() -> None:
    fake = FakeMessageBatches(ANTHROPIC_FAULTS)
    fake.delay = 0.0
    params = {"model": "claude-x", "max_tokens": 3, "messages": [{"role": "user", "content": "hello"}]}
    status, created = fake.create({"requests": [{"custom_id": "line-0", "params": params}]})
    assert status == 200 and created["processing_status"] == "in_progress"
    _, batch = fake.retrieve(created["id"], "http://fake")
    assert batch["processing_status"] == "ended" and batch["results_url"].endswith(f"/{created['id']}/results")
    result = msgspec.json.decode(fake.results(created["id"])[1].splitlines()[0])
    assert result["result"]["type"] == "succeeded" and result["result"]["message"]["usage"]["output_tokens"] == 3


def test_results_come_in_pages_that_fit_a_message() -> None:
    lines = [LineOutcome(i, 200, b"x" * 1000, None) for i in (3, 0, 2, 1)]
    page, after = results_page(lines, 0, 2500)
    assert [line.index for line in page] == [0, 1] and after == 2
    page, after = results_page(lines, 2, 2500)
    assert [line.index for line in page] == [2, 3] and after == -1
    page, after = results_page(lines, 0, 10)  # one line however large
    assert [line.index for line in page] == [0] and after == 1
