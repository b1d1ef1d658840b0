"""One mixed run (whole answers, streams, errors, clients that hang up, a worker killed mid-way):
every request has exactly one usage row, with the tokens the upstream reported and their price."""

from __future__ import annotations

import concurrent.futures

import openai
import pytest

from tests.e2e.stack import Stack
from tests.procs import log_events
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "Hello there"}]  # 3 prompt tokens at the fake
GPT_4O = (2.5e-6, 1e-5)  # the shipped price of gpt-4o, which serves the `gpt-4` group


@pytest.fixture
def run_stack(nats_server, upstream, tmp_path, bus_prefix):
    s = Stack(tmp_path, nats_server.url, bus_prefix, upstream, {"LLMGW_WORKER_CONCURRENCY": "4", "LLMGW_ACK_WAIT": "2"}).start()
    s.start_worker()
    eventually_sync(lambda: s.workers[1].output().count("worker_started"), "second worker", timeout=20)
    yield s
    s.stop()


def test_every_request_of_a_mixed_run_has_exactly_one_exact_row(run_stack):
    stack = run_stack
    client = stack.client(timeout=60)
    reported: dict[str, tuple[int, int]] = {}  # request id -> (prompt, completion) the client saw
    expected_status: dict[str, str] = {}

    def whole(n: int) -> None:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=HELLO, max_tokens=n)
        usage = raw.parse().usage
        reported[raw.headers["x-request-id"]] = (usage.prompt_tokens, usage.completion_tokens)
        expected_status[raw.headers["x-request-id"]] = "success"

    def streamed(n: int) -> None:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4", messages=HELLO, max_tokens=n, stream=True, stream_options={"include_usage": True}
        )
        usage = [c for c in raw.parse()][-1].usage
        reported[raw.headers["x-request-id"]] = (usage.prompt_tokens, usage.completion_tokens)
        expected_status[raw.headers["x-request-id"]] = "success"

    def failing(model: str) -> None:
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.with_raw_response.create(model=model, messages=HELLO)
        expected_status[err.value.response.headers["x-request-id"]] = "upstream_error"

    def hang_up() -> None:
        raw = client.chat.completions.with_raw_response.create(model="chunky", messages=HELLO, max_tokens=60, stream=True)
        stream = raw.parse()
        for i, _ in enumerate(stream):
            if i == 2:
                break
        stream.close()  # the client goes away mid-stream
        expected_status[raw.headers["x-request-id"]] = "cancelled"

    def slow() -> None:
        raw = client.chat.completions.with_raw_response.create(model="slow", messages=HELLO, max_tokens=4)
        usage = raw.parse().usage
        reported[raw.headers["x-request-id"]] = (usage.prompt_tokens, usage.completion_tokens)
        expected_status[raw.headers["x-request-id"]] = "success"

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        jobs = [pool.submit(whole, n) for n in range(1, 11)]
        jobs += [pool.submit(streamed, n) for n in range(1, 11)]
        jobs += [pool.submit(failing, m) for m in ("err-400", "err-500", "err-429")]
        jobs += [pool.submit(hang_up) for _ in range(3)]
        slow_jobs = [pool.submit(slow) for _ in range(6)]
        eventually_sync(
            lambda: log_events(stack.workers[0].output(), "request", model="slow") or None, "a slow request served", timeout=30
        )
        stack.workers[0].kill()  # requests it held are redelivered to the other worker
        for job in jobs + slow_jobs:
            job.result(timeout=90)

    ids = list(expected_status)
    assert len(ids) == 32
    rows = stack.usage_rows(ids, timeout=40)
    counted = stack.query(
        "SELECT count() AS n, uniqExact(request_id) AS u FROM usage WHERE request_id IN {ids:Array(String)}", {"ids": ids}
    )[0]
    assert int(counted["n"]) == int(counted["u"]) == 32  # not one row twice, even before merges
    for request_id, status in expected_status.items():
        row = rows[request_id]
        assert row["status"] == status, (request_id, row)
        if request_id in reported:
            assert (row["prompt_tokens"], row["completion_tokens"]) == reported[request_id]
            assert row["usage_source"] == "provider"
            if row["model_group"] == "gpt-4":
                price = row["prompt_tokens"] * GPT_4O[0] + row["completion_tokens"] * GPT_4O[1]
                assert float(row["cost"]) == pytest.approx(price, abs=1e-9)
        if status == "cancelled":
            assert row["usage_source"] == "estimated" and row["completion_tokens"] >= 2
    assert sum(r["completion_tokens"] for i, r in rows.items() if i in reported) == sum(c for _, c in reported.values())
