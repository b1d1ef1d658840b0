"""Batches across faults: a worker SIGKILLed mid-batch, the edge running the batch SIGKILLed and
started again (and stopped with SIGTERM), nats-server restarted under a running batch. Every line ends once in the output or
error file, no line is sent twice, and each line has at most one usage row (exactly one when it
was answered)."""

from __future__ import annotations

import io
import json

import openai
import pytest

from tests.e2e.stack import Stack
from tests.e2e.test_batches import ENDED, chat_line, jsonl
from tests.procs import NatsServer, free_port, wait_ready
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

LINES = 12
SLOW = "fake-slow-400"
FAULT_ENV = {
    "LLMGW_ACK_WAIT": "2",  # a request its worker did not ack for 2 s goes to another worker
    "LLMGW_WORKER_CONCURRENCY": "4",
    "LLMGW_BATCH_CONCURRENCY": "3",
    "LLMGW_BATCH_POLL_SECONDS": "0.2",
    "LLMGW_BATCH_LEASE_SECONDS": "3",  # a killed edge's batches are taken over 3 s later
}


def start_batch(stack: Stack) -> tuple[openai.OpenAI, str]:
    client = stack.client(timeout=30)
    lines = [chat_line(f"f{i}", model="slow", max_tokens=3) for i in range(LINES)]
    file = client.files.create(file=("faults.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    return client, batch.id


def ended(client: openai.OpenAI, batch_id: str, timeout: float = 120):
    def probe():
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status in ENDED else None

    return eventually_sync(probe, f"batch {batch_id} to end", timeout=timeout, interval=0.3)


def lines_of(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).content.splitlines() if line.strip()]


def rows_per_line(stack: Stack, batch_id: str, lines: set[int] | int) -> dict[int, int]:
    """Usage rows stored per line, counted before ReplacingMergeTree merges (a double would show),
    once every line of `lines` (a set of indices, or the first n) has its row."""
    must = set(range(lines)) if isinstance(lines, int) else lines
    sql = (
        "SELECT client_request_id AS id, count() AS n FROM usage"
        " WHERE startsWith(client_request_id, {p:String}) GROUP BY client_request_id"
    )

    def landed():
        rows = {int(r["id"].rsplit("-", 1)[1]): int(r["n"]) for r in stack.query(sql, {"p": f"{batch_id}-"})}
        return rows if must <= rows.keys() else None

    return eventually_sync(landed, f"usage rows of lines {sorted(must)}", timeout=40, interval=0.3)


def progress(client: openai.OpenAI, batch_id: str, done: int) -> None:
    eventually_sync(
        lambda: client.batches.retrieve(batch_id).request_counts.completed >= done,
        f"{done} lines done",
        timeout=40,
        interval=0.1,
    )


@pytest.fixture
def stack(nats_server, upstream, tmp_path, bus_prefix):
    s = Stack(tmp_path, nats_server.url, bus_prefix, upstream, dict(FAULT_ENV)).start()
    yield s
    s.stop()


def test_a_worker_killed_mid_batch_leaves_every_line_run_and_metered_once(stack: Stack) -> None:
    client, batch_id = start_batch(stack)
    progress(client, batch_id, 2)
    stack.workers[0].kill()  # mid-line: lines are at the upstream, unacked
    stack.start_worker()
    done = ended(client, batch_id)
    assert done.status == "completed", done
    assert (done.request_counts.completed, done.request_counts.failed) == (LINES, 0)
    output = lines_of(client, done.output_file_id)
    assert sorted(o["custom_id"] for o in output) == sorted(f"f{i}" for i in range(LINES))
    assert all(o["response"]["status_code"] == 200 for o in output)
    assert rows_per_line(stack, batch_id, LINES) == {i: 1 for i in range(LINES)}


def test_the_edge_killed_mid_batch_is_taken_over_and_no_line_runs_twice(stack: Stack) -> None:
    before = stack.upstream.stats()["by_model"].get(SLOW, 0)
    client, batch_id = start_batch(stack)
    progress(client, batch_id, 2)
    # SIGKILL to the edge's whole process group: Granian's main process and its worker (which
    # runs the batch) die at once, nothing is cleaned up.
    stack.edge.kill()
    stack.edge = stack._start("edge", "gateway")
    wait_ready(stack.base_url, 45)
    done = ended(client, batch_id)
    assert done.status == "completed", done
    output, errors = lines_of(client, done.output_file_id), lines_of(client, done.error_file_id)
    # Every line once, in one of the files; a line that was running when its edge died is not
    # sent again (it is in the error file as interrupted).
    assert sorted(o["custom_id"] for o in output + errors) == sorted(f"f{i}" for i in range(LINES))
    assert all(e["error"]["code"] == "batch_line_interrupted" for e in errors)
    assert 1 <= len(errors) <= int(FAULT_ENV["LLMGW_BATCH_CONCURRENCY"])
    assert done.request_counts.completed == len(output) and done.request_counts.failed == len(errors)
    rows_per_line(stack, batch_id, {int(o["custom_id"][1:]) for o in output})

    # An interrupted line reached a worker (which answered an edge that was gone, and metered it)
    # unless its edge died between its claim and its publish: the upstream was called once per
    # line with a row, and no line has two.
    def calls_match_rows() -> dict[int, int] | None:
        rows = rows_per_line(stack, batch_id, set())
        calls = stack.upstream.stats()["by_model"].get(SLOW, 0) - before
        return rows if len(rows) == calls else None

    rows = eventually_sync(calls_match_rows, "one upstream call per metered line", timeout=30, interval=0.3)
    assert all(n == 1 for n in rows.values()), rows
    assert len(rows) >= len(output)


def test_a_stopping_edge_finishes_its_running_lines_and_hands_the_batch_over(stack: Stack) -> None:
    before = stack.upstream.stats()["by_model"].get(SLOW, 0)
    client, batch_id = start_batch(stack)
    progress(client, batch_id, 2)
    stack.edge.stop()  # SIGTERM: it claims no more lines, lets those running finish, gives its lease up
    stack.edge = stack._start("edge", "gateway")
    wait_ready(stack.base_url, 45)
    done = ended(client, batch_id)
    assert done.status == "completed", done
    assert (done.request_counts.completed, done.request_counts.failed) == (LINES, 0)
    assert sorted(o["custom_id"] for o in lines_of(client, done.output_file_id)) == sorted(f"f{i}" for i in range(LINES))
    assert rows_per_line(stack, batch_id, LINES) == {i: 1 for i in range(LINES)}
    assert stack.upstream.stats()["by_model"].get(SLOW, 0) - before == LINES


@pytest.fixture
def own_nats(tmp_path):
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


def test_a_nats_server_restart_mid_batch_loses_no_line_and_runs_none_twice(own_nats, upstream, tmp_path) -> None:
    server, restart = own_nats
    (tmp_path / "stack").mkdir()
    stack = Stack(tmp_path / "stack", server.url, "batchnats", upstream, dict(FAULT_ENV)).start()
    try:
        client, batch_id = start_batch(stack)
        progress(client, batch_id, 2)
        server.stop()
        restart()
        done = ended(client, batch_id)
        assert done.status == "completed", done
        output, errors = lines_of(client, done.output_file_id), lines_of(client, done.error_file_id)
        assert sorted(o["custom_id"] for o in output + errors) == sorted(f"f{i}" for i in range(LINES))
        assert len(output) >= LINES - int(FAULT_ENV["LLMGW_BATCH_CONCURRENCY"]), errors
        rows = rows_per_line(stack, batch_id, {int(o["custom_id"][1:]) for o in output})
        assert all(n == 1 for n in rows.values()), rows
        # The finished batch and its files are still there for a client that asks again.
        assert client.batches.retrieve(batch_id).output_file_id == done.output_file_id
    finally:
        stack.stop()
