"""Faults of the shared parts: nats-server restarting under a running gateway, and the edge
stopped (SIGTERM) while it streams an answer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json

import httpx
import pytest

from tests.e2e.sse import content_of, sse_data
from tests.e2e.stack import Stack
from tests.e2e.test_faults_support import (
    HELLO_PROMPT_TOKENS,
    chat,
    fault_config,
    open_stream,
    queues_empty,
    row_count,
    terminate,
    upstream_calls,
    words,
)
from tests.procs import NatsServer, free_port, log_events, port_open
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e


def _ready(stack: Stack) -> bool:
    return httpx.get(f"{stack.base_url}/health/ready", timeout=2).status_code == 200


# ---------------------------------------------------------------------------------------------
# nats-server restarts


@pytest.fixture
def own_nats(tmp_path):
    """A nats-server of this test's own, on a fixed port with a persistent store: stopped and
    started again, it comes back on the same URL with its JetStream data."""
    port = free_port()
    store, logs = tmp_path / "nats-store", tmp_path / "nats-logs"
    logs.mkdir()
    servers = [NatsServer(store_dir=store, log_dir=logs, port=port).start()]

    def restart() -> NatsServer:
        servers.append(NatsServer(store_dir=store, log_dir=logs, port=port).start())
        return servers[-1]

    yield servers[0], restart
    for server in servers:
        server.stop()


def test_a_nats_server_restart_heals_without_restarting_llmgw(own_nats, upstream, tmp_path):
    server, restart = own_nats
    (tmp_path / "stack").mkdir()
    stack = Stack(tmp_path / "stack", server.url, "faultsnats", upstream, {}, config=fault_config(upstream)).start()
    try:
        pids = [p.popen.pid for p in stack.procs]
        before = chat(stack, "gpt-4", 4)
        assert before.status_code == 200
        calls = upstream_calls(upstream, "slow-kill")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            across = pool.submit(chat, stack, "slow-kill", 7)  # its worker calls the upstream across the restart
            eventually_sync(
                lambda: upstream_calls(upstream, "slow-kill") == calls + 1, "the slow request at the upstream", timeout=20
            )

            server.stop()
            eventually_sync(lambda: not _ready(stack), "the edge to notice the bus is gone", timeout=20)
            refused = [chat(stack, "gpt-4", 4, timeout=30)]
            with httpx.Client(timeout=30) as client, open_stream(client, stack, "gpt-4", 4) as down_stream:
                down_stream.read()
            refused.append(down_stream)
            assert not across.done()  # (the test's premise: its answer is still to come)
            restart()
            across = across.result(timeout=60)

        for response in refused:  # a clean refusal, whole or streamed, the client may retry
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {
                "error": {
                    "message": "the gateway's message bus is unavailable; retry shortly",
                    "type": "service_unavailable_error",
                    "param": None,
                    "code": "service_unavailable",
                }
            }
        assert across.status_code == 200, across.text
        assert across.json()["choices"][0]["message"]["content"] == words(7)
        eventually_sync(lambda: _ready(stack), "the edge to be ready again", timeout=60)
        after = chat(stack, "gpt-4", 5)
        assert after.status_code == 200, after.text
        with httpx.Client(timeout=30) as client, open_stream(client, stack, "gpt-4", 6, include_usage=True) as streamed:
            events = list(sse_data(streamed))
        assert content_of(events) == words(6) and events[-1] == "[DONE]"

        assert [p.popen.pid for p in stack.procs] == pids and all(p.running for p in stack.procs)
        for proc in stack.procs:  # each found its way back by itself
            assert log_events(proc.output(), "nats_reconnected"), proc.name

        ids = {
            before.headers["x-request-id"]: 4,
            after.headers["x-request-id"]: 5,
            streamed.headers["x-request-id"]: 6,
            across.headers["x-request-id"]: 7,
        }
        rows = stack.usage_rows(list(ids), timeout=40)
        for request_id, completion in ids.items():
            row = rows[request_id]
            assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == ("success", HELLO_PROMPT_TOKENS, completion)
            assert row["usage_source"] == "provider" and row["attempt"] == 1
            assert row_count(stack, request_id) == 1
        # The refused requests were not run after all once the bus came back (no answer to nobody):
        # their only row is the refusal's.
        eventually_sync(lambda: asyncio.run(queues_empty(server.url, "faultsnats")), "the queues to drain", timeout=30)
        for response in refused:
            request_id = response.headers["x-request-id"]
            statuses = stack.query("SELECT status FROM usage WHERE request_id = {id:String}", {"id": request_id})
            assert [r["status"] for r in statuses] in ([], ["refused"]), statuses
    finally:
        stack.stop()


# ---------------------------------------------------------------------------------------------
# The edge stopped while it streams


@pytest.fixture
def edge_stack(nats_server, upstream, tmp_path):
    s = Stack(tmp_path, nats_server.url, "faultsedge", upstream, {}, config=fault_config(upstream)).start()
    yield s
    s.stop()


def test_sigterm_on_the_edge_lets_a_stream_in_flight_finish(edge_stack):
    stack = edge_stack
    n = 20  # ~2 s at 100 ms between chunks
    with httpx.Client(timeout=30) as client, open_stream(client, stack, "drip-edge", n, include_usage=True) as response:
        assert response.status_code == 200
        events = sse_data(response)
        seen = [next(events), next(events)]  # the role chunk and the first word: the stream is under way
        terminate(stack.edge)
        # New connections are refused from now on, while the stream goes on.
        eventually_sync(lambda: not port_open(stack.port), "the edge to stop listening", timeout=10)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{stack.base_url}/health/live", timeout=2)
        seen += list(events)
    assert seen[-1] == "[DONE]"
    assert content_of(seen) == words(n)
    usage = json.loads(seen[-2])["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (HELLO_PROMPT_TOKENS, n)
    assert stack.edge.popen.wait(30) == 0
    row = stack.usage_rows([response.headers["x-request-id"]])[response.headers["x-request-id"]]
    assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == ("success", HELLO_PROMPT_TOKENS, n)
