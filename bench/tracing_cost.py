"""What tracing a request costs in CPU, span by span, away from the noise of a loaded stack.

bench.cpu measures a whole stack's CPU per request, but on a shared 2-core machine its runs vary
by more than tracing costs. This runs, in one process and many times over, exactly the tracing
work a traced chat request makes in each of llmgw's processes, with the real classes: the edge's
request span and its auth, admission and publish phases (gateway/request_span.py), the worker's
span and its upstream call (workers/request_span.py), metering's insert span
(metering/insert_spans.py), their `traceparent` values, and on the export thread each span's
OTLP encoding (llmgw/otlp_wire.py). It prints microseconds per request for each part, and their
share of `--stack-ms`, the stack's CPU per request with tracing off (bench.cpu's number).

Run: .venv/bin/python -m bench.tracing_cost [--requests 20000] [--stack-ms 1.3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

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


def edge(tracer: Tracer) -> str:
    span = RequestSpan(tracer, SCOPE, REQUEST.request_id, None)
    with phase(span, "auth"):
        pass
    with phase(span, "admission"):
        pass
    with phase(span, "publish"):
        traceparent = span.publishing(REQUEST)
    log = RequestLog(REQUEST.request_id, 0.0, SCOPE, None)
    log.caller, log.model = "team-a-key", "gpt-4o"
    span.end(log)
    return traceparent


def worker(tracer: Tracer, traceparent: str) -> str:
    span = WorkerSpan(tracer, {TRACEPARENT_HEADER: traceparent}, REQUEST, 1)
    outcome = Outcome(usage=Usage(prompt_tokens=12, completion_tokens=16), upstream_model=DEPLOYMENT.upstream_model)
    call = span.upstream_call(REQUEST, DEPLOYMENT, 1)
    span.call_ended(call, outcome, 200)
    outcome.deployment = DEPLOYMENT
    span.end(outcome)
    return span.traceparent()


def metering(tracer: Tracer, traceparent: str) -> None:
    record_insert_spans(tracer, [HeldEvent(1, 0, EVENT, traceparent)], time.time_ns(), 1)


def timed(count: int, run: Callable[[int], None]) -> float:
    """Microseconds per call of `run(i)`."""
    started = time.process_time()
    for i in range(count):
        run(i)
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="traced requests to simulate")
    parser.add_argument("--stack-ms", type=float, default=1.3, help="the stack's CPU ms per request, tracing off")
    args = parser.parse_args()
    n = args.requests
    parts = {name: Kept() for name in ("edge", "worker", "metering")}
    tracers = {name: Tracer(kept, Sampler()) for name, kept in parts.items()}  # type: ignore[arg-type]
    parents = [edge(tracers["edge"]) for _ in range(n)]
    workers = [worker(tracers["worker"], p) for p in parents]
    for kept in parts.values():
        kept.spans.clear()
    rows = {
        "edge: request span, 3 phases": timed(n, lambda i: edge(tracers["edge"]) and None),
        "worker: request span, upstream call": timed(n, lambda i: worker(tracers["worker"], parents[i]) and None),
        "metering: insert span": timed(n, lambda i: metering(tracers["metering"], workers[i])),
    }
    resource, scope = encode_resource({"service.name": "llmgw-bench"}), encode_scope("llmgw", "1")
    for name, kept in parts.items():
        spans = kept.spans
        per_span = len(spans) / n
        batches = [spans[i : i + 512] for i in range(0, len(spans) - 511, 512)]
        us_per_batch = timed(len(batches), lambda i, batches=batches: encode_request(resource, scope, batches[i]) and None)
        rows[f"{name}: OTLP encoding ({per_span:.0f} spans, export thread)"] = us_per_batch / (512 / per_span)
    total = sum(rows.values())
    print(f"tracing work of one traced chat request ({n} requests, CPU time)\n")
    print("| part | µs per request | share of the stack's CPU |")
    print("|---|---:|---:|")
    for name, us in rows.items():
        print(f"| {name} | {us:.1f} | {us / (args.stack_ms * 10):.1f}% |")
    print(f"| **all** | **{total:.1f}** | **{total / (args.stack_ms * 10):.1f}%** |")
    print(f"\n(--stack-ms {args.stack_ms}: the stack's CPU per request without tracing, from bench.cpu)")


if __name__ == "__main__":
    main()
