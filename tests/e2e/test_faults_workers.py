"""Faults of a worker while it serves: killed (SIGKILL) in the middle of a request, and stopped
(SIGTERM) while it serves requests.

(test_workers.py covers a worker killed while requests wait in the queue for it; here the worker
dies after it called the upstream.)
"""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

from tests.e2e.sse import content_of, sse_data
from tests.e2e.stack import Stack
from tests.e2e.test_faults_support import (
    HELLO_ESTIMATED_PROMPT_TOKENS,
    HELLO_PROMPT_TOKENS,
    chat,
    fault_config,
    open_stream,
    row_count,
    start_named_worker,
    terminate,
    upstream_calls,
    words,
)
from tests.procs import log_events
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(nats_server, upstream, tmp_path, bus_prefix):
    """One worker, `w0`, to begin with: the test sends it a request, then starts `w1`. A request
    not acked (or touched) for 2 s is given to another worker."""
    s = Stack(
        tmp_path,
        nats_server.url,
        bus_prefix,
        upstream,
        {"LLMGW_WORKER_ID": "w0", "LLMGW_ACK_WAIT": "2", "LLMGW_WORKER_CONCURRENCY": "8"},
        config=fault_config(upstream),
    ).start()
    yield s
    s.stop()


def test_a_worker_killed_mid_request_is_answered_once_by_another(stack, upstream):
    calls = upstream_calls(upstream, "slow-kill")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(chat, stack, "slow-kill", 5)
        eventually_sync(lambda: upstream_calls(upstream, "slow-kill") == calls + 1, "w0 to call the upstream", timeout=20)
        start_named_worker(stack, "w1")
        assert not answer.done()  # (the test's premise: w0 is still waiting for the upstream)
        stack.workers[0].kill()
        response = answer.result(timeout=60)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == words(5)
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (HELLO_PROMPT_TOKENS, 5)
    # The upstream was called twice: w0's call was made and its answer died with w0, unacked, so
    # JetStream gave the request to w1, which had to call again. That cannot be avoided after a
    # crash: nothing outlives the process that could say the call was made or what it returned,
    # and a chat completion has no idempotency key that would let the provider answer the second
    # call from the first. The provider bills both calls; llmgw meters the one that answered.
    assert upstream_calls(upstream, "slow-kill") == calls + 2
    request_id = response.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["http_status"], row["usage_source"]) == ("success", 200, "provider")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (HELLO_PROMPT_TOKENS, 5)
    assert (row["attempt"], row["worker_id"]) == (2, "w1")
    assert row_count(stack, request_id) == 1  # one row, not one per delivery


def test_a_stream_whose_worker_is_killed_ends_with_an_error_event_and_is_metered(stack, upstream):
    n = 40  # 12 s of chunks at 300 ms
    calls = upstream_calls(upstream, "drip-kill")
    with httpx.Client(timeout=60) as client, open_stream(client, stack, "drip-kill", n, include_usage=True) as response:
        assert response.status_code == 200
        events = sse_data(response)
        seen = [next(events), next(events), next(events)]  # the role chunk, w0, w1: from worker w0
        start_named_worker(stack, "w1")
        stack.workers[0].kill()
        seen += list(events)

    request_id = response.headers["x-request-id"]
    error = json.loads(seen[-1])
    assert error == {
        "error": {
            "message": "the worker serving this stream failed; retry the request",
            "type": "api_error",
            "param": None,
            "code": "upstream_error",
        }
    }
    assert "[DONE]" not in seen
    received = content_of(seen[:-1])
    assert received and words(n).startswith(received)  # a prefix of the answer, never a word twice
    # w1 took the request over (JetStream redelivered it) and called the upstream again; the edge
    # then ended the stream and told w1 to stop, so that is the row (w0's count died with it).
    assert upstream_calls(upstream, "drip-kill") == calls + 2
    row = stack.usage_rows([request_id])[request_id]
    assert (row["attempt"], row["worker_id"], row["stream"]) == (2, "w1", True)
    assert (row["status"], row["http_status"], row["error_code"]) == ("cancelled", 499, "client_closed")
    assert row["usage_source"] == "estimated"
    assert row["prompt_tokens"] == HELLO_ESTIMATED_PROMPT_TOKENS
    assert 1 <= row["completion_tokens"] < n
    assert row_count(stack, request_id) == 1


def test_sigterm_on_a_worker_finishes_what_it_serves_and_takes_nothing_new(stack, upstream):
    w0 = stack.workers[0]

    def calls() -> tuple[int, int]:
        return upstream_calls(upstream, "slow-term"), upstream_calls(upstream, "drip-term")

    before = calls()
    with concurrent.futures.ThreadPoolExecutor(8) as pool, httpx.Client(timeout=60) as client:
        whole = [pool.submit(chat, stack, "slow-term", 3 + i) for i in range(2)]
        with open_stream(client, stack, "drip-term", 20, include_usage=True) as streamed:
            events = sse_data(streamed)
            seen = [next(events)]
            eventually_sync(lambda: calls() == (before[0] + 2, before[1] + 1), "w0 to serve all three", timeout=20)
            start_named_worker(stack, "w1")
            assert not any(f.done() for f in whole)  # (the test's premise: w0 is still serving them)
            terminate(w0)
            eventually_sync(lambda: log_events(w0.output(), "worker_draining"), "w0 to start draining", timeout=10)
            later = [pool.submit(chat, stack, "gpt-4", 2 + i) for i in range(4)]  # sent while w0 drains
            seen += list(events)
        whole = [f.result(timeout=60) for f in whole]
        later = [f.result(timeout=60) for f in later]
    assert w0.popen.wait(30) == 0

    assert seen[-1] == "[DONE]" and content_of(seen) == words(20)
    for i, response in enumerate(whole):
        assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == words(3 + i)
    for i, response in enumerate(later):
        assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == words(2 + i)
    assert log_events(w0.output(), "worker_draining")[0]["in_flight"] == 3

    served = {r.headers["x-request-id"]: ("w0", 3 + i) for i, r in enumerate(whole)}
    served[streamed.headers["x-request-id"]] = ("w0", 20)
    served.update({r.headers["x-request-id"]: ("w1", 2 + i) for i, r in enumerate(later)})
    rows = stack.usage_rows(list(served))
    for request_id, (worker, completion) in served.items():
        row = rows[request_id]
        assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == ("success", HELLO_PROMPT_TOKENS, completion)
        # attempt 1 everywhere: w0 gave nothing back that it had started, and nothing sent to it
        # while it drained went through it (it would have been redelivered: attempt 2).
        assert (row["worker_id"], row["attempt"]) == (worker, 1), request_id
