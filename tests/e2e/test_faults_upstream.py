"""Faults around the upstream call: the client hangs up mid-stream (the call cancelled, or read
to its end with LLMGW_ON_CLIENT_DISCONNECT=finish), the upstream never answers, a stream stalls.

(test_mixed_run.py has clients hanging up among other traffic; here it is one at a time, with
what happens to the upstream call and both settings.)
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.sse import content_of, sse_data
from tests.e2e.stack import Stack
from tests.e2e.test_faults_support import (
    GROUPS,
    HELLO_ESTIMATED_PROMPT_TOKENS,
    HELLO_PROMPT_TOKENS,
    chat,
    fault_config,
    open_stream,
    row_count,
    upstream_calls,
    words,
)

pytestmark = pytest.mark.e2e

GONE_TOKENS = 40  # the hung-up stream's length: 10 s at 250 ms a chunk
GONE_FULL_MS = GONE_TOKENS * 250  # the least time the fake takes to send all of it


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    """The default worker: a client that goes away cancels the upstream call."""
    s = Stack(tmp_path_factory.mktemp("cancel"), nats_server.url, "faultsupcancel", upstream, {}, config=fault_config(upstream))
    yield s.start()
    s.stop()


@pytest.fixture(scope="module")
def finishing_stack(nats_server, upstream, tmp_path_factory):
    """A worker that reads a stream to its end when the client goes away."""
    s = Stack(
        tmp_path_factory.mktemp("finish"),
        nats_server.url,
        "faultsupfinish",
        upstream,
        {"LLMGW_ON_CLIENT_DISCONNECT": "finish"},
        config=fault_config(upstream),
    )
    yield s.start()
    s.stop()


def _hang_up_after(stack: Stack, chunks: int) -> tuple[str, list[str]]:
    """Stream `drip-gone`, read `chunks` events, then close the connection: (request id, events)."""
    with httpx.Client(timeout=30) as client, open_stream(client, stack, "drip-gone", GONE_TOKENS) as response:
        assert response.status_code == 200
        events = sse_data(response)
        seen = [next(events) for _ in range(chunks)]
    # (leaving the block closed the response mid-body, and the client's connection with it)
    return response.headers["x-request-id"], seen


def test_a_client_that_hangs_up_cancels_the_upstream_call(stack, upstream):
    calls = upstream_calls(upstream, "drip-gone")
    request_id, seen = _hang_up_after(stack, 3)
    assert content_of(seen) == "w0 w1"
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["http_status"], row["error_code"]) == ("cancelled", 499, "client_closed")
    # The worker stopped reading and closed the upstream connection: what it had relayed is all
    # that is known, so the tokens are estimated (the chunks sent, the prompt by its length).
    assert row["usage_source"] == "estimated"
    assert row["prompt_tokens"] == HELLO_ESTIMATED_PROMPT_TOKENS
    assert 3 <= row["completion_tokens"] < GONE_TOKENS
    assert row["latency_ms"] < GONE_FULL_MS  # over before the fake could have sent the whole stream
    assert upstream_calls(upstream, "drip-gone") == calls + 1
    assert row_count(stack, request_id) == 1


def test_with_finish_a_client_that_hangs_up_is_metered_exactly(finishing_stack, upstream):
    stack = finishing_stack
    calls = upstream_calls(upstream, "drip-gone")
    request_id, seen = _hang_up_after(stack, 3)
    assert content_of(seen) == "w0 w1"
    row = stack.usage_rows([request_id], timeout=40)[request_id]
    # The worker read the upstream stream to its end: the provider's own count, all 40 tokens,
    # and the request is still recorded as cancelled (the client did not get the whole answer).
    assert (row["status"], row["http_status"], row["error_code"]) == ("cancelled", 499, "client_closed")
    assert row["usage_source"] == "provider"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (HELLO_PROMPT_TOKENS, GONE_TOKENS)
    assert row["latency_ms"] >= GONE_FULL_MS
    assert upstream_calls(upstream, "drip-gone") == calls + 1
    assert row_count(stack, request_id) == 1


def test_with_finish_a_stream_read_to_the_end_is_still_a_success(finishing_stack):
    """The setting changes nothing for a client that stays."""
    with httpx.Client(timeout=30) as client, open_stream(client, finishing_stack, "gpt-4", 6, include_usage=True) as response:
        events = list(sse_data(response))
    assert content_of(events) == words(6) and events[-1] == "[DONE]"
    request_id = response.headers["x-request-id"]
    row = finishing_stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["usage_source"], row["completion_tokens"]) == ("success", "provider", 6)


def test_an_upstream_that_never_answers_is_504_after_the_deployment_timeout(stack, upstream):
    calls = upstream_calls(upstream, "hang-1s")
    response = chat(stack, "hang-1s", 4, timeout=20)
    assert response.status_code == 504
    deployment = response.json()["error"]["message"].split("deployment ")[1].split(" ")[0]
    assert response.json() == {
        "error": {
            # the upstream's own deadline (timeout: 1), not the edge's (30 s): the worker says so
            "message": f"the upstream of deployment {deployment} did not answer in time",
            "type": "timeout_error",
            "param": None,
            "code": "timeout",
        }
    }
    assert upstream_calls(upstream, "hang-1s") == calls + 1  # no retry: num_retries is 0
    request_id = response.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["http_status"], row["error_code"]) == ("upstream_error", 504, "timeout")
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (0, 0, "none")
    assert float(row["cost"]) == 0
    assert row["upstream_model"] == GROUPS["hang-1s"][0]


def test_a_stalled_stream_is_ended_with_an_error_event_and_metered(stack):
    with httpx.Client(timeout=30) as client, open_stream(client, stack, "stall-1s", 5, include_usage=True) as response:
        assert response.status_code == 200
        events = list(sse_data(response))
    # The role chunk came at once, then nothing for the deployment's stream_timeout (1 s; the
    # fake waits 3 s between chunks): the stream ends with an error event and no [DONE].
    assert len(events) == 2 and content_of(events[:1]) == ""
    error = json.loads(events[1])["error"]
    deployment = error["message"].split("deployment ")[1].split(" ")[0]
    assert error == {
        "message": f"the upstream of deployment {deployment} sent nothing for 1 s: the stream was ended",
        "type": "timeout_error",
        "param": None,
        "code": "timeout",
    }
    request_id = response.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["http_status"], row["error_code"]) == ("upstream_error", 504, "timeout")
    assert row["usage_source"] == "estimated"  # the provider never reported usage
    assert (row["prompt_tokens"], row["completion_tokens"]) == (HELLO_ESTIMATED_PROMPT_TOKENS, 1)
    assert row["stream"] is True
