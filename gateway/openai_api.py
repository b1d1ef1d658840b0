"""The OpenAI-compatible routes: chat completions (whole or streamed), embeddings, models.

Chat completions and embeddings are raw ASGI handlers mounted in Litestar: Litestar's request and
response layer (signature model, Request and Response objects, header parsing) costs ~100 us of CPU
per request, against ~25 us for an ASGI route (measured with a stub handler, no network), and
these two routes carry all the traffic. Litestar still routes them and its exception handlers still
answer anything they raise.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import msgspec
import structlog
from litestar import Request, Response, get
from litestar.exceptions import MethodNotAllowedException
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send

from gateway.anthropic_messages import (
    StreamTranslator,
    anthropic_error_json,
    anthropic_error_type,
    chat_completion_to_message,
    messages_to_chat_body,
    parse_messages_request,
)
from gateway import admission
from gateway.edge import Edge
from gateway.errors import GatewayError, error_json, error_response
from gateway.limits_policy import apply_max_tokens
from gateway.schemas import parse_chat, parse_embeddings
from llmgw.contracts import (
    Chunks,
    Completed,
    ErrorCode,
    ErrorType,
    Failed,
    Operation,
    ReplyMessage,
    UpstreamRequest,
)

log = structlog.get_logger()

_encoder = msgspec.json.Encoder()
JSON = "application/json"
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


class Dialect:
    """How a route's clients speak when it is not OpenAI's format: the Anthropic Messages API at
    `/v1/messages`, served by any configured model through the OpenAI-format path."""

    @staticmethod
    def to_chat(body: bytes) -> bytes:
        return messages_to_chat_body(parse_messages_request(body))

    @staticmethod
    def whole(body: bytes, model: str) -> bytes:
        return chat_completion_to_message(body, model)

    @staticmethod
    def stream(model: str, request_id: str) -> StreamTranslator:
        return StreamTranslator(model, "msg_" + request_id.removeprefix("req-"))

    @staticmethod
    def error(exc: GatewayError, request_id: str) -> bytes:
        return anthropic_error_json(exc.status, exc.message, request_id)


ANTHROPIC_DIALECT = Dialect()


def _paths(suffix: str) -> list[str]:
    """Served at /v1/..., at /... (seed 001), and under /openai (seed 000's OPENAI_BASE_URL)."""
    return [f"/v1/{suffix}", f"/{suffix}", f"/openai/v1/{suffix}", f"/openai/{suffix}"]


class RequestLog:
    """The one canonical log line of a request, written when it is over."""

    __slots__ = ("request_id", "started", "model", "stream", "status", "code")

    def __init__(self, request_id: str, started: float) -> None:
        self.request_id = request_id
        self.started = started
        self.model: str | None = None
        self.stream = False
        self.status = 200
        self.code: str | None = None

    def emit(self) -> None:
        log.info(
            "request",
            request_id=self.request_id,
            model=self.model,
            stream=self.stream,
            status=self.status,
            code=self.code,
            latency_ms=round((time.time() - self.started) * 1000.0, 2),
        )


def _failure_error(reply: Failed) -> GatewayError:
    headers = {"retry-after": f"{reply.retry_after:g}"} if reply.retry_after is not None else None
    return GatewayError(reply.status, reply.message, reply.type, reply.code, reply.param, headers)


async def _next_reply(queue: asyncio.Queue[ReplyMessage], deadline: float) -> ReplyMessage:
    try:
        async with asyncio.timeout(deadline - time.time()):
            return await queue.get()
    except TimeoutError:
        raise GatewayError(504, "no worker answered before the deadline", ErrorType.TIMEOUT, ErrorCode.TIMEOUT) from None


def build_routes(edge: Edge) -> list:
    max_body = edge.settings.max_body_bytes

    async def dispatch(scope: Scope, receive: Receive, send: Send, operation: str, dialect: "Dialect | None" = None) -> None:
        if scope["method"] != "POST":
            await _not_post(scope, send)
            return
        started = time.time()
        request_id = f"req-{os.urandom(16).hex()}"
        rlog = RequestLog(request_id, started)
        handed_to_stream = False
        answered_by: str | None = None
        try:
            authorization, api_key, content_length = _request_headers(scope)
            principal = await edge.auth.authenticate_fresh(authorization, api_key)
            body = await _read_body(receive, content_length, max_body)
            if dialect is not None:
                body = dialect.to_chat(body)
            if operation == Operation.CHAT:
                parsed = parse_chat(body)
                body = apply_max_tokens(body, parsed, edge.settings)
                stream = bool(parsed.stream)
                include_usage = bool(stream and parsed.stream_options and parsed.stream_options.include_usage)
            else:
                parsed = parse_embeddings(body)
                stream = include_usage = False
            rlog.model, rlog.stream = parsed.model, stream
            model = edge.access.resolve(principal, parsed.model)
            plan = edge.router.plan(model)
            timeout = edge.settings.request_timeout
            if parsed.timeout is not None:
                timeout = min(timeout, parsed.timeout)
            deadline = started + timeout
            admitted = await admission.admit(edge.ratelimits, principal, plan.deployments, request_id, deadline)
            deployment = admitted.deployment
            max_tokens = parsed.max_completion_tokens or parsed.max_tokens if operation == Operation.CHAT else None
            try:
                ledgers, reserved, cost_cap = await edge.budgets.admit(
                    principal, model, deployment, deployment.upstream_model_for(model), len(body), max_tokens,
                    request_id, deadline,
                )
            except GatewayError:
                await admission.release(edge.ratelimits, admitted, 0)
                raise
            upstream_request = UpstreamRequest(
                request_id=request_id,
                reply_to=edge.dispatcher.reply_subject,
                operation=operation,
                model_group=model,
                deployment_id=deployment.id,
                body=body,
                stream=stream,
                include_usage=include_usage,
                deadline=deadline,
                received_at=started,
                caller=principal.caller,
                system_prompts=edge.access.system_prompts(principal, edge.identity.global_system_prompt()),
                cost_cap=cost_cap,
                ledgers=ledgers,
                **client_credentials(principal, body),
                fallbacks=[d.id for d in plan.deployments if d is not deployment] + plan.fallbacks,
                context_fallbacks=plan.context_fallbacks,
                num_retries=edge.router.settings.num_retries,
            )
            queue = edge.dispatcher.open(request_id)
            edge.router.started(deployment.id)
            routed = deployment.id
            try:
                try:
                    await edge.dispatcher.submit(deployment.provider, upstream_request, principal.priority)
                except GatewayError:
                    await edge.budgets.release(request_id, reserved, ledgers)  # it never reached a worker
                    raise
                first = await _next_reply(queue, deadline)
                answered_by = first.deployment_id
                if isinstance(first, Failed):
                    await edge.budgets.settle(request_id, reserved, ledgers, first.cost)
                    await admission.release(edge.ratelimits, admitted, first.tokens)
                    raise _failure_error(first)
                if stream and isinstance(first, Chunks):
                    handed_to_stream = True

                    async def settle(cost: float | None, tokens: int | None = None) -> None:
                        await edge.budgets.settle(request_id, reserved, ledgers, cost)
                        await admission.release(edge.ratelimits, admitted, tokens)
                        settled.append(True)

                    settled: list[bool] = []

                    first_chunk_after = time.time() - started
                    relay = _relay_stream(
                        edge, first, queue, deadline, rlog, send, settle, dialect and dialect.stream(parsed.model, request_id),
                        admitted.headers(),
                    )
                    try:
                        await _cancel_on_disconnect(relay, receive)
                    finally:
                        edge.router.finished(routed, answered_by, first_chunk_after)
                        if not settled:  # the client went away: free its slot (tokens unknown here)
                            await admission.release(edge.ratelimits, admitted, 0)
                    return
                if isinstance(first, Completed):
                    # Before the client has its answer, the budget holds only what the request
                    # cost: its next request cannot find the budget taken by this one.
                    await edge.budgets.settle(request_id, reserved, ledgers, first.cost)
                    await admission.release(edge.ratelimits, admitted, first.tokens)
                    answer = first.body if dialect is None else dialect.whole(first.body, parsed.model)
                    await _send(send, 200, answer, [(b"x-request-id", request_id.encode()), *admitted.headers()])
                    return
                raise GatewayError(502, "the worker answered in an unexpected form", ErrorType.API, ErrorCode.INTERNAL)
            finally:
                if not handed_to_stream:
                    edge.dispatcher.close(request_id)
                    edge.router.finished(routed, answered_by, time.time() - started)
                    await admission.release(edge.ratelimits, admitted, 0)  # (a no-op once released with tokens)
        except GatewayError as exc:
            rlog.status, rlog.code = exc.status, exc.code
            await _send_error(send, exc, request_id, dialect)
        finally:
            if not handed_to_stream:
                rlog.emit()

    @asgi(["/v1/messages", "/messages"], copy_scope=False)
    async def messages(scope: Scope, receive: Receive, send: Send) -> None:
        await dispatch(scope, receive, send, Operation.CHAT, ANTHROPIC_DIALECT)

    @asgi(_paths("chat/completions"), copy_scope=False)
    async def chat_completions(scope: Scope, receive: Receive, send: Send) -> None:
        await dispatch(scope, receive, send, Operation.CHAT)

    @asgi(_paths("embeddings"), copy_scope=False)
    async def embeddings(scope: Scope, receive: Receive, send: Send) -> None:
        await dispatch(scope, receive, send, Operation.EMBEDDINGS)

    @get(_paths("models"))
    async def models(request: Request) -> Response:
        try:
            principal = await edge.auth.authenticate_fresh(request.headers.get("authorization"), request.headers.get("api-key"))
        except GatewayError as exc:
            return error_response(exc)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": provider}
            for name, provider in edge.router.model_names()
            if edge.access.allows(principal, name)
        ]
        return Response(content=_encoder.encode({"object": "list", "data": data}), media_type=JSON)

    return [chat_completions, embeddings, models, messages]


class _ClientCredentials(msgspec.Struct):
    api_base: str | None = None
    base_url: str | None = None
    api_key: str | None = None


_client_credentials_decoder = msgspec.json.Decoder(_ClientCredentials)


def client_credentials(principal, body: bytes) -> dict[str, str]:
    """`api_base` / `api_key` from the body, for a key whose permissions allow it
    (`allow_client_side_credentials`); for every other caller they are ignored (and never sent
    upstream), so a client cannot aim the gateway at an address of its choosing."""
    key = principal.key
    if key is None or not key.permissions.get("allow_client_side_credentials"):
        return {}
    try:
        given = _client_credentials_decoder.decode(body)
    except msgspec.DecodeError:
        return {}
    base = given.api_base or given.base_url
    if base is not None and not base.startswith(("http://", "https://")):
        raise GatewayError(400, "`api_base` must be an http(s) URL", ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, "api_base")
    out = {}
    if base:
        out["client_api_base"] = base
    if given.api_key:
        out["client_api_key"] = given.api_key
    return out


def _request_headers(scope: Scope) -> tuple[str | None, str | None, int | None]:
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


def _too_large() -> GatewayError:
    return GatewayError(413, "Request Entity Too Large", ErrorType.INVALID_REQUEST, ErrorCode.PAYLOAD_TOO_LARGE)


async def _read_body(receive: Receive, content_length: int | None, limit: int) -> bytes:
    """The request body, refused past `limit` bytes (announced or actually sent)."""
    if content_length is not None and content_length > limit:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(499, "the client disconnected before sending the whole body", code="client_closed")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, exc: GatewayError, request_id: str, dialect: "Dialect | None" = None) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in exc.headers.items()]
    headers.append((b"x-request-id", request_id.encode()))
    body = error_json(exc.message, exc.type, exc.code, exc.param) if dialect is None else dialect.error(exc, request_id)
    await _send(send, exc.status, body, headers)


async def _not_post(scope: Scope, send: Send) -> None:
    """What Litestar answers on a POST-only route: OPTIONS lists the methods, others get 405."""
    if scope["method"] != "OPTIONS":
        raise MethodNotAllowedException(headers={"allow": "POST, OPTIONS"})
    await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", b"OPTIONS, POST")]})
    await send({"type": "http.response.body", "body": b""})


async def _cancel_on_disconnect(relay: Awaitable[None], receive: Receive) -> None:
    """Await `relay`, cancelled if the client disconnects first (its `finally` then tells the
    worker). Granian accepts sends to a client that is gone, so only `receive` tells."""
    task = asyncio.current_task()
    relaying = True

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if relaying:
            task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await relay
    except asyncio.CancelledError:
        if not (watcher.done() and not watcher.cancelled() and task.uncancel() == 0):
            raise  # (also) cancelled from outside
    finally:
        relaying = False
        watcher.cancel()


async def _relay_stream(
    edge: Edge, first: Chunks, queue: asyncio.Queue[ReplyMessage], deadline: float, rlog: RequestLog, send: Send,
    on_end: Callable[[float | None, int | None], Awaitable[None]], translator: "StreamTranslator | None" = None,
    extra_headers: list[tuple[bytes, bytes]] = [],
) -> None:
    """Relay the worker's chunks as SSE events the moment they arrive; errors end the stream.
    With a `translator` (the Anthropic dialect) the chunks go out as its events instead."""
    finished = False
    attempt = first.attempt
    reply: ReplyMessage = first

    def events_of(data: list[bytes]) -> bytes:
        if translator is None:
            return b"".join([b"data: " + d + b"\n\n" for d in data])
        return b"".join([translator.feed(d) for d in data])

    def sse_error(message: str, type: str, code: str | None, status: int) -> bytes:
        if translator is None:
            return _sse_error(message, type, code)
        return translator.error_event(message, anthropic_error_type(status))

    def done_marker() -> bytes:
        return b"data: [DONE]\n\n" if translator is None else translator.finish()

    async def body(data: bytes, more: bool = True) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})

    try:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, (b"x-request-id", rlog.request_id.encode()), *extra_headers]}
        )
        while True:
            if isinstance(reply, Chunks):
                if reply.attempt != attempt:
                    # The worker that started this stream died and another one restarted the request:
                    # the client already has a partial answer, so end it with an error.
                    rlog.status, rlog.code = 502, ErrorCode.UPSTREAM_ERROR
                    finished = True
                    await edge.dispatcher.cancel(rlog.request_id)
                    await body(sse_error("the worker serving this stream failed; retry the request", ErrorType.API, ErrorCode.UPSTREAM_ERROR, 502), False)
                    return
                events = events_of(reply.data)
                if reply.done:
                    await on_end(reply.cost, reply.tokens)
                    finished = True
                    await body(events + done_marker(), False)
                    return
                if events:
                    await body(events)
            elif isinstance(reply, Failed):
                await on_end(reply.cost, reply.tokens)
                finished = True
                rlog.status, rlog.code = reply.status, reply.code
                await body(sse_error(reply.message, reply.type, reply.code, reply.status), False)
                return
            try:
                reply = await _next_reply(queue, deadline)
            except GatewayError as exc:
                finished = True
                rlog.status, rlog.code = exc.status, exc.code
                await body(sse_error(exc.message, exc.type, exc.code, exc.status), False)
                return
    finally:
        edge.dispatcher.close(rlog.request_id)
        if not finished:
            rlog.status, rlog.code = 499, "client_closed"
            await edge.dispatcher.cancel(rlog.request_id)
        rlog.emit()


def _sse_error(message: str, type: str, code: str | None) -> bytes:
    return b"data: " + error_json(message, type, code) + b"\n\n"
