"""The Files and Batch APIs with the official openai SDK: a JSONL file uploaded, a batch run line by
line through the edge's pipeline (one usage row per line), its output and error files in OpenAI's
format; lines past a key's budget in the error file; cancel; files and batches only their owners
see."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import nats
import openai
import pytest

from llmgw.contracts import Subjects
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
    lines = [chat_line(f"line-{i}") for i in range(5)] + [chat_line("bad-model", model="no-such-model")]
    streamed = chat_line("line-5")
    lines.insert(5, {**streamed, "body": {**streamed["body"], "stream": True, "stream_options": {"include_usage": True}}})
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


def key_info(stack: Stack, key: str) -> dict:
    response = httpx.get(
        f"{stack.base_url}/key/info", params={"key": key}, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10
    )
    return response.json()["info"]


def test_lines_past_the_keys_budget_land_in_the_error_file_and_spend_stays_within_it(stack: Stack) -> None:
    budget = 3 * (3 * 2.5e-6 + 10 * 1e-5)  # about three of these lines (gpt-4o's prices)
    key = new_key(stack, max_budget=budget)
    client = client_for(stack, key)
    # A line waits for the lines in flight before it (LLMGW_BUDGET_WAIT_SECONDS), so the budget is
    # spent by answers, cut where it ends (a line's worst case is more than the budget): some ten
    # lines are answered, the rest refused.
    lines = 24
    file = upload(client, [chat_line(f"b{i}", max_tokens=10) for i in range(lines)])
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = until_ended(client, batch.id)
    assert done.status == "completed"
    counts = done.request_counts
    assert counts.total == lines and counts.completed + counts.failed == lines
    assert counts.completed >= 1 and counts.failed >= 1
    errors = file_lines(client, done.error_file_id)
    assert len(errors) == counts.failed
    for e in errors:
        assert e["response"]["status_code"] == 429
        assert e["response"]["body"]["error"]["code"] == "budget_exceeded"
    assert len(file_lines(client, done.output_file_id)) == counts.completed
    # Every line metered once (a refused line is the edge's refusal row), the batch's spend is
    # its usage rows' cost, and it never passed the budget.
    assert usage_by_line(stack, batch.id, lines) == {f"{batch.id}-{i}": 1 for i in range(lines)}
    spend = batch_spend(stack, batch.id)
    assert spend <= budget + 1e-12
    assert done.model_extra["spend"] == pytest.approx(spend, abs=1e-12)
    ledger = eventually_sync(lambda: (s := key_info(stack, key)["spend"]) >= spend - 1e-12 and s, "the key's spend", timeout=20)
    assert ledger == pytest.approx(spend, abs=1e-12) and ledger <= budget + 1e-12


def upstream_calls(stack: Stack, model: str) -> int:
    return stack.upstream.stats()["by_model"].get(model, 0)


def test_cancel_stops_the_remaining_lines_and_keeps_the_finished_ones(stack: Stack) -> None:
    client = stack.client()
    before = upstream_calls(stack, "fake-slow-400")
    file = upload(client, [chat_line(f"c{i}", model="slow") for i in range(30)])
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    eventually_sync(
        lambda: client.batches.retrieve(batch.id).request_counts.completed >= 2, "two lines done", timeout=30, interval=0.1
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    done = until_ended(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    ran = done.request_counts.completed + done.request_counts.failed
    assert 2 <= ran < 30 and done.request_counts.failed == 0
    output = file_lines(client, done.output_file_id)
    assert len(output) == ran and all(o["response"]["status_code"] == 200 for o in output)
    # Only the lines that ran reached the upstream and were metered, each once.
    assert upstream_calls(stack, "fake-slow-400") - before == ran
    assert usage_by_line(stack, batch.id, ran) == {f"{batch.id}-{o['custom_id'][1:]}": 1 for o in output}
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(until_ended(client, upload_and_run(client, [chat_line("x")])).id)


def upload_and_run(client: openai.OpenAI, lines: list[dict]) -> str:
    file = upload(client, lines)
    return client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h").id


def test_files_and_batches_are_seen_only_by_their_owners(stack: Stack) -> None:
    owner = client_for(stack, new_key(stack, user_id="ana"))
    same_user = client_for(stack, new_key(stack, user_id="ana"))
    stranger = client_for(stack, new_key(stack, user_id="bob"))
    file = upload(owner, [chat_line("mine")])
    batch_id = owner.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h").id
    for call in (
        lambda: stranger.files.retrieve(file.id),
        lambda: stranger.files.content(file.id),
        lambda: stranger.files.delete(file.id),
        lambda: stranger.batches.retrieve(batch_id),
        lambda: stranger.batches.cancel(batch_id),
        lambda: stranger.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert file.id not in {f.id for f in stranger.files.list()}
    assert batch_id not in {b.id for b in stranger.batches.list()}
    done = until_ended(owner, batch_id)
    assert done.status == "completed"
    # Another key of the same user sees them (records are the key's, its user's and its team's).
    assert same_user.batches.retrieve(batch_id).output_file_id == done.output_file_id
    assert json.loads(same_user.files.content(done.output_file_id).content)["custom_id"] == "mine"
    with pytest.raises(openai.NotFoundError):
        stranger.files.content(done.output_file_id)
    with pytest.raises(openai.AuthenticationError):
        client_for(stack, "sk-not-a-key").files.list()


def test_batch_lines_go_to_the_batch_priority_queue(stack: Stack) -> None:
    async def delivered() -> int:
        nc = await nats.connect(stack.nats_url)
        try:
            subjects = Subjects(stack.prefix)
            info = await nc.jetstream().consumer_info(subjects.requests_stream, subjects.worker_consumer("openai", "batch"))
            return info.delivered.consumer_seq
        finally:
            await nc.close()

    before = asyncio.run(delivered())
    client = stack.client()
    done = until_ended(client, upload_and_run(client, [chat_line(f"p{i}") for i in range(3)]))
    assert done.request_counts.completed == 3
    assert asyncio.run(delivered()) - before == 3


def test_lines_refused_by_a_rate_limit_wait_and_run_once_each(stack: Stack) -> None:
    # One request at a time for this key, two lines at a time from the runner: every other line is
    # refused by the parallel limit before it reaches a worker, waits its retry-after and goes again.
    key = new_key(stack, max_parallel_requests=1)
    client = client_for(stack, key)
    done = until_ended(client, upload_and_run(client, [chat_line(f"r{i}", model="slow", max_tokens=2) for i in range(4)]))
    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (4, 0)
    # One usage row per line, the served one: the refusals that were sent again wrote none.
    assert usage_statuses(stack, done.id, 4) == {f"{done.id}-{i}": ["success"] for i in range(4)}


def usage_statuses(stack: Stack, batch_id: str, n: int) -> dict[str, list[str]]:
    sql = "SELECT client_request_id, status FROM usage WHERE startsWith(client_request_id, {p:String})"

    def landed() -> dict[str, list[str]] | None:
        out: dict[str, list[str]] = {}
        for row in stack.query(sql, {"p": f"{batch_id}-"}):
            out.setdefault(row["client_request_id"], []).append(row["status"])
        return out if sum(map(len, out.values())) >= n else None

    return eventually_sync(landed, f"{n} usage rows", timeout=30, interval=0.3)


def test_an_answer_larger_than_a_kv_message_is_kept_whole(stack: Stack) -> None:
    client = stack.client()
    # ~990 kB of embeddings: an answer that fits a NATS message (1 MB), whose result line (the body
    # escaped in JSON) does not fit the line's KV record.
    many = [f"w{i}" for i in range(7_900)]
    lines = [
        {"custom_id": "small", "method": "POST", "url": "/v1/embeddings", "body": {"model": "gpt-4", "input": "hello"}},
        {"custom_id": "large", "method": "POST", "url": "/v1/embeddings", "body": {"model": "gpt-4", "input": many}},
    ]
    file = upload(client, lines)
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h")
    done = until_ended(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 2, done
    output = {o["custom_id"]: o for o in file_lines(client, done.output_file_id)}
    assert len(output["small"]["response"]["body"]["data"]) == 1
    assert len(output["large"]["response"]["body"]["data"]) == len(many)
    assert usage_by_line(stack, batch.id, 2) == {f"{batch.id}-0": 1, f"{batch.id}-1": 1}


def test_an_upload_larger_than_the_edges_body_limit_is_taken(stack: Stack) -> None:
    # The edge refuses bodies over LLMGW_MAX_BODY_BYTES (10 MB); a batch input file may be 200 MB.
    padding = "x" * 11_000
    lines = [chat_line(f"big{i}") | {"body": {**chat_line(f"big{i}")["body"], "user": padding}} for i in range(1_000)]
    client = stack.client(timeout=60)
    file = upload(client, lines)
    assert file.bytes == len(jsonl(lines)) > 10 * 1024 * 1024
    assert client.files.content(file.id).content == jsonl(lines)
    client.files.delete(file.id)
