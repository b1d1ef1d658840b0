"""Request ids, and the log line of every answer the pipeline does not write itself.

A client may name its request with `x-request-id`: an id of 1 to 128 characters from
[A-Za-z0-9._:-] is echoed in the answer's `x-request-id` and written in the request's log line
(`client_request_id`); anything else is ignored. The gateway's own id (`request_id`, unique per
request: it is what keeps a usage record from being counted twice) is in every log line and usage
row either way.

The hot routes set `x-request-id` themselves and write their own canonical log line (see
gateway/asgi_io.RequestLog); the `before_send` hook here does both for every other answer (admin,
health, models, Litestar's own 404/405 and refusals made before any route ran)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import structlog
from litestar.types import Message, Scope

HEADER = b"x-request-id"
MAX_LENGTH = 128
_VALID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Set in the ASGI scope by the pipeline once a request is its own (it writes that request's line).
LOGGED = "llmgw.logged"

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
    log.info(
        "request",
        request_id=request_id,
        client_request_id=client_id,
        method=scope.get("method"),
        path=scope.get("path"),
        route=matched_route(scope),
        status=message["status"],
        model=None,
        stream=False,
        caller=None,
    )
