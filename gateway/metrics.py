"""The edge's metrics and its `/metrics` route.

Granian runs the edge in several processes; `python -m gateway` points prometheus_client's
multiprocess mode at a directory of this run (`PROMETHEUS_MULTIPROC_DIR`, emptied at start)
before they fork, and `/metrics`, whichever process answers it, sums every process's files: one
view of the whole edge. Without that variable (the edge in one process) the process's own
registry is served.
"""

from __future__ import annotations

import os
import time

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from llmgw.contracts import ErrorCode
from llmgw.metrics import LATENCY_BUCKETS, MULTIPROC_ENV, Children, status_class

REQUESTS = Children(
    Counter(
        "llmgw_requests",
        "Requests the edge answered, by route, model group, provider and status class.",
        ["route", "model_group", "provider", "status_class"],
    )
)
DURATION = Children(
    Histogram(
        "llmgw_request_duration_seconds",
        "Time from a request's first byte to its last answer byte, by route.",
        ["route"],
        buckets=LATENCY_BUCKETS,
    )
)
TTFT = Children(
    Histogram(
        "llmgw_time_to_first_token_seconds",
        "Time from a request's first byte to the worker's first reply (a stream's first chunk), by route.",
        ["route"],
        buckets=LATENCY_BUCKETS,
    )
)
REFUSALS = Children(
    Counter(
        "llmgw_refusals",
        "Requests refused before they reached a worker, by reason: auth, budget, rate_limit, model_access, bad_input.",
        ["reason"],
    )
)
IN_FLIGHT = Gauge(
    "llmgw_edge_in_flight_requests",
    "Requests the edge is serving now (all its HTTP workers).",
    multiprocess_mode="livesum",
)
KEY_MAP_UPDATED = Gauge(
    "llmgw_key_map_last_update_timestamp_seconds",
    "When the edge last applied a change of its key map (its KV watch): time() minus it is its age.",
    multiprocess_mode="max",
)

REFUSAL_REASONS = {
    ErrorCode.INVALID_API_KEY: "auth",
    ErrorCode.BUDGET_EXCEEDED: "budget",
    ErrorCode.MODEL_PRICE_UNKNOWN: "budget",
    ErrorCode.RATE_LIMITED: "rate_limit",
    ErrorCode.PERMISSION_DENIED: "model_access",
    ErrorCode.MODEL_NOT_FOUND: "model_access",
    ErrorCode.END_USER_BLOCKED: "model_access",
}


def refusal_reason(status: int, code: str | None) -> str | None:
    """The reason label of a refusal (a 4xx the edge answered itself), or None for other errors."""
    reason = REFUSAL_REASONS.get(code or "")
    if reason is not None:
        return reason
    if status == 401:
        return "auth"
    if status == 403:
        return "model_access"
    if status == 429:
        return "rate_limit"
    if 400 <= status < 500:
        return "bad_input"
    return None


def observe(route: str, model_group: str, provider: str, status: int, seconds: float, ttft: float | None, stream: bool) -> None:
    """One finished request."""
    REQUESTS.get(route, model_group, provider, status_class(status)).inc()
    DURATION.get(route).observe(seconds)
    if ttft is not None and stream:
        TTFT.get(route).observe(ttft)


def refused(status: int, code: str | None) -> None:
    reason = refusal_reason(status, code)
    if reason is not None:
        REFUSALS.get(reason).inc()


# Set in the ASGI scope by whatever refuses a request outside the pipeline, naming the reason.
REFUSAL = "llmgw.refusal"
UNMATCHED = "unmatched"  # the route label of a request no route took


def answered_outside(route: str | None, status: int, reason: str | None) -> None:
    """One answer the pipeline did not give (admin, health, a 404 of no route, a refusal made
    before any route ran): counted by its path template. A 4xx is a refusal, except a matched
    route's 404 (a record that is not there is an answer)."""
    REQUESTS.get(route or UNMATCHED, "", "", status_class(status)).inc()
    if reason is None and 400 <= status < 500 and not (status == 404 and route is not None):
        reason = refusal_reason(status, None)
    if reason is not None:
        REFUSALS.get(reason).inc()


def key_map_updated() -> None:
    KEY_MAP_UPDATED.set(time.time())


def key_map_seen(_key: str, _record: object) -> None:
    """A listener of the key map's watch."""
    KEY_MAP_UPDATED.set(time.time())


def exposition() -> bytes:
    """The text format of every edge process's metrics."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


@get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus' scrape of the edge."""
    return Response(content=exposition(), media_type=CONTENT_TYPE_LATEST)
