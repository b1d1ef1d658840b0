"""What observing a request costs in CPU, metric by metric and span by span, away from the noise
of a loaded stack.

bench.cpu measures a whole stack's CPU per request, but on a shared 2-core machine its runs vary
by more than observing costs. This runs, many times over, exactly the metrics and tracing work a
chat request makes in each of llmgw's processes, with the real classes.

Metrics (each part in a process of its own, as the part runs: the edge in prometheus_client's
multiprocess mode, as `python -m gateway` always runs it): the edge's in-flight gauge and its
request counter and duration histogram (gateway/pipeline.py), the worker's upstream histogram,
token and spend counters (workers/metrics.py), metering's insert histogram and row counter per
batch of `--events-per-batch` events (metering/consumer.py).

Tracing (every request traced): the edge's
request span and its auth, admission and publish phases (gateway/request_span.py), the worker's
span and its upstream call (workers/request_span.py), metering's insert span
(metering/insert_spans.py), their `traceparent` values, and on the export thread each span's
OTLP encoding (llmgw/otlp_wire.py).

It prints microseconds per request for each part, and their share of `--stack-ms`, the stack's
CPU per request with metrics and tracing off (bench.cpu `--observe off`'s number).

Run: .venv/bin/python -m bench.observe_cost [--requests 20000] [--stack-ms 1.3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import msgspec

from gateway.asgi_io import RequestLog
from gateway.request_span import RequestSpan, phase
from llmgw.config import Deployment
from llmgw.contracts import TRACEPARENT_HEADER, Caller, UpstreamRequest, UsageEvent
from llmgw.otlp_wire import encode_request, encode_resource, encode_scope
from llmgw.tracing import Sampler, Span, Tracer
from metering.insert_spans import record_insert_spans
from metering.usage_messages import HeldEvent
from workers.request_span import WorkerSpan
from workers.usage import Usage
from workers.usage_events import Outcome

SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/v1/chat/completions",
    "path_template": "/v1/chat/completions",
    "headers": [(b"host", b"gateway"), (b"authorization", b"Bearer sk-x"), (b"content-type", b"application/json")],
}
REQUEST = UpstreamRequest(
    request_id="req-0123456789abcdef",
    reply_to="llmgw.reply.edge-1.0",
    operation="chat",
    model_group="gpt-4o",
    deployment_id="openai-gpt-4o",
    body=b"{}",
    stream=False,
    include_usage=False,
    deadline=0.0,
    received_at=0.0,
    caller=Caller(key_hash="hash", key_alias="team-a-key"),
)
DEPLOYMENT = Deployment(id="openai-gpt-4o", model_name="gpt-4o", provider="openai", upstream_model="gpt-4o-2024-08-06")
EVENT = UsageEvent(
    request_id=REQUEST.request_id,
    ts=0.0,
    key_hash="hash",
    operation="chat",
    model_group="gpt-4o",
    deployment_id=DEPLOYMENT.id,
    provider="openai",
    upstream_model=DEPLOYMENT.upstream_model,
    prompt_tokens=12,
    completion_tokens=16,
    cost=0.00019,
    latency_ms=1.0,
    status="success",
    http_status=200,
    usage_source="provider",
    stream=False,
)


class Kept:
    """The export queue, kept in memory: what is encoded afterwards."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def add(self, span: Span) -> None:
        self.spans.append(span)


LOG = RequestLog(REQUEST.request_id, 0.0, SCOPE, None)  # the pipeline's own, made whatever tracing is
LOG.caller, LOG.model = "team-a-key", "gpt-4o"


OUTCOME = Outcome(usage=Usage(prompt_tokens=12, completion_tokens=16), upstream_model=DEPLOYMENT.upstream_model)
OUTCOME.deployment = DEPLOYMENT  # (the worker's, made whatever tracing is)


def requests(n: int) -> list[UpstreamRequest]:
    """n requests, each its own id (as a request id is, in a span's attributes)."""
    return [msgspec.structs.replace(REQUEST, request_id=f"req-{i:016x}") for i in range(n)]


def edge(tracer: Tracer, request: UpstreamRequest) -> str:
    span = RequestSpan(tracer, SCOPE, request.request_id, None)
    with phase(span, "auth"):
        pass
    with phase(span, "admission"):
        pass
    with phase(span, "publish"):
        traceparent = span.publishing(request)
    span.end(LOG)
    return traceparent


def worker(tracer: Tracer, request: UpstreamRequest, traceparent: str) -> str:
    span = WorkerSpan(tracer, {TRACEPARENT_HEADER: traceparent}, request, 1)
    call = span.upstream_call(request, DEPLOYMENT, 1)
    span.call_ended(call, OUTCOME, 200)
    span.end(OUTCOME)
    return span.traceparent()


def metering(tracer: Tracer, event: UsageEvent, traceparent: str) -> None:
    record_insert_spans(tracer, [HeldEvent(1, 0, event, traceparent)], time.time_ns(), 1)


def timed(count: int, run: Callable[[int], None]) -> float:
    """Microseconds per call of `run(i)`."""
    started = time.process_time()
    for i in range(count):
        run(i)
    return (time.process_time() - started) / count * 1e6


def edge_metrics(n: int) -> dict[str, float]:
    from gateway import metrics

    def request(_i: int) -> None:
        metrics.IN_FLIGHT.inc()
        metrics.IN_FLIGHT.dec()
        metrics.observe("chat", "gpt-4o", "openai", 200, 0.0123, None, False)

    def stream(_i: int) -> None:
        metrics.IN_FLIGHT.inc()
        metrics.IN_FLIGHT.dec()
        metrics.observe("chat", "gpt-4o", "openai", 200, 0.0456, 0.0078, True)

    return {
        "edge: in flight, request count, duration (whole answer)": timed(n, request),
        "edge: the same and time to first token (stream)": timed(n, stream),
    }


def worker_metrics(n: int) -> dict[str, float]:
    from workers.metrics import usage_metrics

    observed = usage_metrics(False)
    return {"worker: upstream duration, tokens, spend": timed(n, lambda i: observed.observe(EVENT))}


def metering_metrics(n: int, per_batch: int) -> dict[str, float]:
    from metering import metrics

    def batch(_i: int) -> None:
        metrics.INSERT_DURATION.observe(0.0042)
        metrics.ROWS.inc(per_batch)

    return {f"metering: insert duration, rows (a batch of {per_batch})": timed(n, batch) / per_batch}


def metrics_part(part: str, n: int, per_batch: int) -> dict[str, float]:
    """One process's metrics work, measured in a process of its own started as the part is."""
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory(prefix="llmgw-observe-cost-") as directory:
        if part == "edge":
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        argv = [sys.executable, "-m", "bench.observe_cost", "--metrics-part", part]
        argv += ["--requests", str(n), "--events-per-batch", str(per_batch)]
        done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def tracing(n: int) -> dict[str, float]:
    parts = {name: Kept() for name in ("edge", "worker", "metering")}
    tracers = {name: Tracer(kept, Sampler()) for name, kept in parts.items()}  # type: ignore[arg-type]
    asked = requests(n)
    events = [msgspec.structs.replace(EVENT, request_id=request.request_id) for request in asked]
    parents = [edge(tracers["edge"], request) for request in asked]
    workers = [worker(tracers["worker"], request, p) for request, p in zip(asked, parents, strict=True)]
    for kept in parts.values():
        kept.spans.clear()
    rows = {
        "edge: request span, 3 phases": timed(n, lambda i: edge(tracers["edge"], asked[i]) and None),
        "worker: request span, upstream call": timed(n, lambda i: worker(tracers["worker"], asked[i], parents[i]) and None),
        "metering: insert span": timed(n, lambda i: metering(tracers["metering"], events[i], workers[i])),
    }
    resource, scope = encode_resource({"service.name": "llmgw-bench"}), encode_scope("llmgw", "1")
    for name, kept in parts.items():
        spans = kept.spans
        per_span = len(spans) / n
        batches = [spans[i : i + 512] for i in range(0, len(spans) - 511, 512)]
        us_per_batch = timed(len(batches), lambda i, batches=batches: encode_request(resource, scope, batches[i]) and None)
        rows[f"{name}: OTLP encoding ({per_span:.0f} spans, export thread)"] = us_per_batch / (512 / per_span)
    return rows


def table(title: str, rows: dict[str, float], stack_ms: float) -> float:
    """Prints one table; its total (µs per request)."""
    total = sum(rows.values())
    print(f"\n{title}\n")
    print("| part | µs per request | share of the stack's CPU |")
    print("|---|---:|---:|")
    for name, us in rows.items():
        print(f"| {name} | {us:.1f} | {us / (stack_ms * 10):.2f}% |")
    print(f"| **all** | **{total:.1f}** | **{total / (stack_ms * 10):.2f}%** |")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests to simulate")
    parser.add_argument("--stack-ms", type=float, default=1.3, help="the stack's CPU ms per request, observing off")
    parser.add_argument("--events-per-batch", type=int, default=8, help="usage events in one metering insert")
    parser.add_argument("--metrics-part", choices=("edge", "worker", "metering"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    n, per_batch = args.requests, args.events_per_batch
    if args.metrics_part is not None:  # a child of the run below
        measure = {"edge": edge_metrics, "worker": worker_metrics}.get(args.metrics_part)
        print(json.dumps(measure(n) if measure else metering_metrics(n, per_batch)))
        return
    measured: dict[str, float] = {}
    for part in ("edge", "worker", "metering"):
        measured |= metrics_part(part, n, per_batch)
    stream_row = next(name for name in measured if name.endswith("(stream)"))
    stream_us = measured.pop(stream_row)
    print(f"the metrics and tracing work of one chat request ({n} requests, CPU time)")
    metrics_us = table("metrics (on by default)", measured, args.stack_ms)
    print(f"\n(a stream's edge metrics: {stream_us:.1f} µs instead of the whole answer's row)")
    tracing_us = table("tracing (every request traced)", tracing(n), args.stack_ms)
    both = metrics_us + tracing_us
    print(f"\nmetrics and tracing: **{both:.1f} µs per request, {both / (args.stack_ms * 10):.1f}% of the stack's CPU**")
    print(f"(--stack-ms {args.stack_ms}: the stack's CPU per request with both off, from bench.cpu --observe off)")


if __name__ == "__main__":
    main()
