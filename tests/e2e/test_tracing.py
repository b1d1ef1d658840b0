"""Request ids, log lines and OpenTelemetry traces, end to end.

The stack (edge, worker, metering as separate processes) exports its spans to an OTLP/HTTP
receiver (tests/otlp_receiver.py) that decodes them as a collector would. Each request must make one trace whose spans
link the edge's, the worker's and metering's; a client's `traceparent` is continued; a client's
`x-request-id` comes back in the answer's header and is stored in the usage row; every request,
an unknown route's 404 and a refusal before the body was read among them, has its log line."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.otlp_receiver import ReceivedSpan, Receiver
from tests.procs import log_events
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
HELLO = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello, how are you?"}]}


@pytest.fixture(scope="module")
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, receiver, tmp_path_factory):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2etracing", upstream, env).start()
    yield s
    s.stop()


@pytest.fixture
def http(stack):
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


def _row_of(stack: Stack, client_id: str) -> dict:
    sql = "SELECT * FROM usage FINAL WHERE client_request_id = {id:String}"
    rows = eventually_sync(lambda: stack.query(sql, {"id": client_id}), f"the usage row of {client_id}", timeout=30)
    assert len(rows) == 1, rows
    return rows[0]


def _whole_trace(receiver: Receiver, request_id: str) -> list[ReceivedSpan]:
    """The trace of the request, once the edge's, the worker's and metering's spans are all in."""

    def complete() -> list[ReceivedSpan] | None:
        with receiver.lock:
            mine = [s for s in receiver.spans if s.attributes.get("llmgw.request_id") == request_id]
        if {s.service for s in mine} != {"llmgw-edge", "llmgw-worker", "llmgw-metering"}:
            return None
        spans = receiver.trace(mine[0].trace_id)
        # the edge's phases and the upstream call carry no request id: wait for them as well
        return spans if len(spans) >= 7 else None

    return eventually_sync(complete, f"the spans of {request_id}", timeout=30)


def _check_linked(spans: list[ReceivedSpan]) -> ReceivedSpan:
    """The spans form one tree across the three processes; return the edge's request span."""
    assert len({s.trace_id for s in spans}) == 1
    by_id = {s.span_id: s for s in spans}
    edge = [s for s in spans if s.service == "llmgw-edge" and s.name.startswith("POST ")]
    assert len(edge) == 1, spans
    root = edge[0]
    assert root.kind == 2  # SERVER
    phases = {s.name: s for s in spans if s.parent_span_id == root.span_id and s.service == "llmgw-edge"}
    assert set(phases) == {"auth", "admission", "publish"}, phases
    workers = [s for s in spans if s.service == "llmgw-worker" and s.parent_span_id == root.span_id]
    assert len(workers) == 1, spans
    worker = workers[0]
    assert worker.kind == 5  # CONSUMER
    assert worker.attributes["gen_ai.request.model"] == "gpt-4"
    calls = [s for s in spans if s.service == "llmgw-worker" and s.parent_span_id == worker.span_id]
    assert len(calls) == 1, spans
    call = calls[0]
    assert call.kind == 3  # CLIENT
    assert call.start_ns >= worker.start_ns and call.end_ns <= worker.end_ns
    assert call.attributes["gen_ai.provider.name"] == "openai"
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["gen_ai.usage.input_tokens"] > 0
    assert call.attributes["gen_ai.usage.output_tokens"] > 0
    inserts = [s for s in spans if s.service == "llmgw-metering"]
    assert len(inserts) == 1 and inserts[0].parent_span_id == worker.span_id, spans
    assert inserts[0].attributes["db.system.name"] == "clickhouse"
    assert all(s.parent_span_id in by_id for s in spans if s is not root)
    return root


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_is_one_trace_across_edge_worker_and_metering(stack, receiver, stream):
    client_id = f"trace-one.{int(stream)}:{os.urandom(4).hex()}"
    client = stack.client()
    if stream:
        raw = client.chat.completions.with_raw_response.create(
            **HELLO, stream=True, stream_options={"include_usage": True}, extra_headers={"x-request-id": client_id}
        )
        chunks = list(raw.parse())
        assert chunks[-1].usage is not None
    else:
        raw = client.chat.completions.with_raw_response.create(**HELLO, extra_headers={"x-request-id": client_id})
        assert raw.parse().usage.completion_tokens > 0
    assert raw.headers["x-request-id"] == client_id

    row = _row_of(stack, client_id)
    assert row["client_request_id"] == client_id
    assert row["request_id"].startswith("req-") and row["request_id"] != client_id
    root = _check_linked(_whole_trace(receiver, row["request_id"]))
    assert root.parent_span_id == ""  # no traceparent from the client: a trace of its own
    assert root.attributes["llmgw.client_request_id"] == client_id
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["gen_ai.request.model"] == "gpt-4"

    line = log_events(stack.edge.output(), "request", client_request_id=client_id)
    assert len(line) == 1, line
    assert line[0]["request_id"] == row["request_id"]
    assert (line[0]["method"], line[0]["path"], line[0]["route"]) == ("POST", "/v1/chat/completions", "/v1/chat/completions")
    assert (line[0]["status"], line[0]["model"], line[0]["stream"]) == (200, "gpt-4", stream)
    assert MASTER_KEY not in stack.edge.output()


def test_a_clients_traceparent_is_continued(stack, receiver):
    trace_id, parent_id = os.urandom(16).hex(), os.urandom(8).hex()
    client_id = f"trace-parent-{os.urandom(4).hex()}"
    stack.client().chat.completions.create(
        **HELLO, extra_headers={"traceparent": f"00-{trace_id}-{parent_id}-01", "x-request-id": client_id}
    )
    row = _row_of(stack, client_id)
    spans = _whole_trace(receiver, row["request_id"])
    assert {s.trace_id for s in spans} == {trace_id}
    root = _check_linked(spans)
    assert root.parent_span_id == parent_id


def test_a_clients_unsampled_traceparent_is_not_traced_by_any_process(stack, receiver):
    unsampled = os.urandom(16).hex()
    dropped_id, kept_id = f"trace-unsampled-{os.urandom(4).hex()}", f"trace-after-{os.urandom(4).hex()}"
    client = stack.client()
    client.chat.completions.create(
        **HELLO, extra_headers={"traceparent": f"00-{unsampled}-{os.urandom(8).hex()}-00", "x-request-id": dropped_id}
    )
    client.chat.completions.create(**HELLO, extra_headers={"x-request-id": kept_id})
    dropped, kept = _row_of(stack, dropped_id), _row_of(stack, kept_id)
    _check_linked(_whole_trace(receiver, kept["request_id"]))  # each process sends its spans in order
    assert receiver.trace(unsampled) == []
    with receiver.lock:
        assert not [s for s in receiver.spans if s.attributes.get("llmgw.request_id") == dropped["request_id"]]


@pytest.mark.parametrize("sent", ["x" * 129, "has space", "semi;colon", "ünï".encode(), ""])
def test_an_invalid_request_id_is_replaced(http, stack, sent):
    answer = http.post("/v1/chat/completions", json=HELLO, headers={**AUTH, "x-request-id": sent})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"].startswith("req-")
    assert answer.headers["x-request-id"] != sent


def test_an_unknown_route_has_its_log_line_and_the_clients_id(http, stack):
    client_id = f"missing-{os.urandom(4).hex()}"
    answer = http.get("/v1/no-such-route", headers={"x-request-id": client_id})
    assert answer.status_code == 404
    assert answer.headers["x-request-id"] == client_id
    lines = eventually_sync(lambda: log_events(stack.edge.output(), "request", client_request_id=client_id), "the 404's log line")
    assert len(lines) == 1
    assert (lines[0]["method"], lines[0]["path"], lines[0]["route"], lines[0]["status"]) == (
        "GET",
        "/v1/no-such-route",
        None,
        404,
    )
    assert lines[0]["request_id"].startswith("req-")


def test_a_request_refused_before_its_body_was_read_has_its_log_line(http, stack):
    client_id = f"refused-{os.urandom(4).hex()}"
    answer = http.post(
        "/v1/chat/completions", json=HELLO, headers={"Authorization": "Bearer sk-wrong", "x-request-id": client_id}
    )
    assert answer.status_code == 401
    assert answer.headers["x-request-id"] == client_id
    lines = eventually_sync(lambda: log_events(stack.edge.output(), "request", client_request_id=client_id), "the 401's log line")
    assert len(lines) == 1
    line = lines[0]
    assert (line["method"], line["path"], line["route"], line["status"]) == (
        "POST",
        "/v1/chat/completions",
        "/v1/chat/completions",
        401,
    )
    assert line["caller"] is None and line["model"] is None
    assert "sk-wrong" not in stack.edge.output()
