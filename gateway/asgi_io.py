"""The raw ASGI side of the hot routes: reading a request's headers and body, sending JSON and
errors, waiting for a worker's reply, noticing a client that went away, and the request's one
canonical log line. Shared by the OpenAI-compatible routes and the native passthrough routes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from litestar.exceptions import MethodNotAllowedException

from gateway.errors import GatewayError
from gateway.request_ids import matched_route
from llmgw.contracts import ErrorCode, ErrorType, Failed, ReplyMessage

log = structlog.get_logger()

# The hot routes speak raw ASGI with plain dicts (Litestar's typed events are for its own layer).
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# The head of a server-sent event stream (proxies are asked not to buffer it).
SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class RequestLog:
    """The one canonical log line of a request, written when it is over: what was asked (method,
    path, route, model, stream), by whom (the key's alias and user, never the key), how it ended."""

    __slots__ = (
        "caller",
        "client_request_id",
        "code",
        "lease",
        "method",
        "model",
        "path",
        "request_id",
        "route",
        "started",
        "status",
        "stream",
        "user",
    )

    def __init__(self, request_id: str, started: float, scope: Scope, client_request_id: str | None) -> None:
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.started = started
        self.method: str = scope.get("method", "")
        self.path: str = scope.get("path", "")
        self.route = matched_route(scope)
        self.caller: str | None = None  # the key's alias (or hash prefix), once the key was checked
        self.user: str | None = None
        self.model: str | None = None
        self.stream = False
        self.status = 200
        self.code: str | None = None
        self.lease: str | None = None  # how its budget reservation and rate-limit slots ended

    def emit(self) -> None:
        log.info(
            "request",
            request_id=self.request_id,
            client_request_id=self.client_request_id,
            method=self.method,
            path=self.path,
            route=self.route,
            model=self.model,
            stream=self.stream,
            caller=self.caller,
            user=self.user,
            status=self.status,
            code=self.code,
            lease=self.lease,
            latency_ms=round((time.time() - self.started) * 1000.0, 2),
        )


def failure_error(reply: Failed) -> GatewayError:
    headers = {"retry-after": f"{reply.retry_after:g}"} if reply.retry_after is not None else None
    return GatewayError(reply.status, reply.message, reply.type, reply.code, reply.param, headers)


async def next_reply(queue: asyncio.Queue[ReplyMessage], deadline: float) -> ReplyMessage:
    try:
        async with asyncio.timeout(deadline - time.time()):
            return await queue.get()
    except TimeoutError:
        raise GatewayError(504, "no worker answered before the deadline", ErrorType.TIMEOUT, ErrorCode.TIMEOUT) from None


def request_headers(scope: Scope) -> tuple[str | None, str | None, int | None]:
    """(authorization, api-key, content-length) from the ASGI scope: the only headers read."""
    authorization = api_key = content_length = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = authorization or value.decode("latin-1")
        elif name == b"api-key" or name == b"x-api-key":  # Azure clients; Anthropic SDKs (/v1/messages)
            api_key = api_key or value.decode("latin-1")
        elif name == b"content-length" and value.isdigit():
            content_length = int(value)
    return authorization, api_key, content_length


def too_large() -> GatewayError:
    """413; the connection is closed after it (what is left of the body is not read), so a client
    does not send its next request on a connection the server is done with."""
    return GatewayError(
        413, "Request Entity Too Large", ErrorType.INVALID_REQUEST, ErrorCode.PAYLOAD_TOO_LARGE, headers={"connection": "close"}
    )


# How much more of a body that is already over its limit the edge reads and drops, so that a
# client still sending (chunked, no length announced) reads the 413 instead of a reset connection.
DISCARD_LIMIT = 64 << 20


async def _discard_rest(receive: Receive, limit: int) -> None:
    dropped = 0
    while dropped <= limit:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))


async def read_body(receive: Receive, content_length: int | None, limit: int) -> bytes:
    """The request body, refused past `limit` bytes (announced or actually sent)."""
    if content_length is not None and content_length > limit:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(499, "the client disconnected before sending the whole body", code="client_closed")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            if message.get("more_body", False):
                await _discard_rest(receive, DISCARD_LIMIT)
            raise too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def not_post(scope: Scope, send: Send) -> None:
    """What Litestar answers on a POST-only route: OPTIONS lists the methods, others get 405."""
    if scope["method"] != "OPTIONS":
        raise MethodNotAllowedException(headers={"allow": "POST, OPTIONS"})
    await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", b"OPTIONS, POST")]})
    await send({"type": "http.response.body", "body": b""})


async def cancel_on_disconnect(relay: Awaitable[bool], receive: Receive) -> bool:
    """Await `relay` and return what it returns, or False when the client disconnected first and
    it was cancelled (its `finally` then tells the worker). Granian accepts sends to a client that
    is gone, so only `receive` tells."""
    task = asyncio.current_task()
    assert task is not None  # (called from a request's task)
    relaying = True

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if relaying:
            task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await relay
    except asyncio.CancelledError:
        if not (watcher.done() and not watcher.cancelled() and task.uncancel() == 0):
            raise  # (also) cancelled from outside
        return False
    finally:
        relaying = False
        watcher.cancel()
