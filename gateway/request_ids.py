"""Request ids, and the log line of every answer the pipeline does not write itself.

A client may name its request with `x-request-id`: an id of 1 to 128 characters from
[A-Za-z0-9._:-] is echoed in the answer's `x-request-id` and written in the request's log line
(`client_request_id`); anything else is ignored. The gateway's own id (`request_id`, unique per
request: it is what keeps a usage record from being counted twice) is in every log line and usage
row either way.

The hot routes set `x-request-id` themselves and write their own canonical log line (see
gateway/asgi_io.RequestLog); the `before_send` hook here does both for every other answer (admin,
health, models, Litestar's own 404/405 and refusals made before any route ran), and counts it
in the edge's metrics."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from litestar.types import Message, Scope

from gateway import metrics

HEADER = b"x-request-id"
MAX_LENGTH = 128
_VALID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Set in the ASGI scope by the pipeline once a request is its own (it writes that request's line).
LOGGED = "llmgw.logged"
METRICS_PATH = "/metrics"

log = structlog.get_logger()


def new_request_id() -> str:
    return f"req-{os.urandom(16).hex()}"


def client_request_id(scope: Mapping[str, Any]) -> str | None:
    """The client's valid `x-request-id`, or None (absent, too long, or other characters)."""
    for name, value in scope.get("headers") or ():
        if name == HEADER:
            return value.decode("ascii") if _VALID.fullmatch(value) else None
    return None


def matched_route(scope: Mapping[str, Any]) -> str | None:
    """The path template of the route that took the request (None: no route matched)."""
    template = scope.get("path_template")
    return template if isinstance(template, str) else None


def request_id_hook(counted: bool) -> Callable[[Message, Scope], Awaitable[None]]:
    """The `before_send` hook: `x-request-id` and the log line of every answer the pipeline did
    not write itself, and (`counted`: metrics on) its count."""

    async def add_request_id(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = list(message.get("headers") or [])
        if scope.get(LOGGED):
            if not any(name == HEADER for name, _ in headers):
                message["headers"] = [*headers, (HEADER, new_request_id().encode())]
            return
        request_id = new_request_id()
        client_id = client_request_id(scope)
        answered = next((value for name, value in headers if name == HEADER), None)
        if answered is None:
            headers.append((HEADER, (client_id or request_id).encode()))
            message["headers"] = headers
        route = matched_route(scope)
        if counted and scope.get("path") != METRICS_PATH:  # (a scrape is not traffic)
            reason = scope.get(metrics.REFUSAL)
            metrics.answered_outside(route, message["status"], reason if isinstance(reason, str) else None)
        log.info(
            "request",
            request_id=request_id,
            client_request_id=client_id,
            method=scope.get("method"),
            path=scope.get("path"),
            route=route,
            status=message["status"],
            model=None,
            stream=False,
            caller=None,
        )

    return add_request_id
