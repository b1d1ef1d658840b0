"""The OpenAI-compatible routes: chat completions (whole or streamed), embeddings, models."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import msgspec
import structlog
from litestar import Request, Response, get, post
from litestar.response import Stream

from gateway.edge import Edge
from gateway.errors import GatewayError, error_json, error_response
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
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


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
    async def dispatch(request: Request, operation: str) -> Response | Stream:
        started = time.time()
        request_id = f"req-{uuid.uuid4().hex}"
        rlog = RequestLog(request_id, started)
        handed_to_stream = False
        try:
            principal = edge.auth.authenticate(request.headers.get("authorization"), request.headers.get("api-key"))
            body = await request.body()
            if operation == Operation.CHAT:
                parsed = parse_chat(body)
                stream = bool(parsed.stream)
                include_usage = bool(stream and parsed.stream_options and parsed.stream_options.include_usage)
            else:
                parsed = parse_embeddings(body)
                stream = include_usage = False
            rlog.model, rlog.stream = parsed.model, stream
            model = edge.access.resolve(principal, parsed.model)
            deployment = edge.router.pick(model)
            deadline = started + edge.settings.request_timeout
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
            )
            queue = edge.dispatcher.open(request_id)
            try:
                await edge.dispatcher.submit(deployment.provider, upstream_request)
                first = await _next_reply(queue, deadline)
                if isinstance(first, Failed):
                    raise _failure_error(first)
                if stream and isinstance(first, Chunks):
                    handed_to_stream = True
                    return Stream(
                        _relay_stream(edge, first, queue, deadline, rlog),
                        media_type="text/event-stream",
                        headers={**SSE_HEADERS, "x-request-id": request_id},
                    )
                if isinstance(first, Completed):
                    return Response(content=first.body, media_type=JSON, headers={"x-request-id": request_id})
                raise GatewayError(502, "the worker answered in an unexpected form", ErrorType.API, ErrorCode.INTERNAL)
            finally:
                if not handed_to_stream:
                    edge.dispatcher.close(request_id)
        except GatewayError as exc:
            rlog.status, rlog.code = exc.status, exc.code
            return error_response(exc, request_id)
        finally:
            if not handed_to_stream:
                rlog.emit()

    @post(_paths("chat/completions"), status_code=200)
    async def chat_completions(request: Request) -> Response | Stream:
        return await dispatch(request, Operation.CHAT)

    @post(_paths("embeddings"), status_code=200)
    async def embeddings(request: Request) -> Response:
        return await dispatch(request, Operation.EMBEDDINGS)

    @get(_paths("models"))
    async def models(request: Request) -> Response:
        try:
            principal = edge.auth.authenticate(request.headers.get("authorization"), request.headers.get("api-key"))
        except GatewayError as exc:
            return error_response(exc)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": provider}
            for name, provider in edge.router.model_names()
            if edge.access.allows(principal, name)
        ]
        return Response(content=_encoder.encode({"object": "list", "data": data}), media_type=JSON)

    return [chat_completions, embeddings, models]


async def _relay_stream(
    edge: Edge, first: Chunks, queue: asyncio.Queue[ReplyMessage], deadline: float, rlog: RequestLog
) -> AsyncIterator[bytes]:
    """Relay the worker's chunks as SSE events the moment they arrive; errors end the stream."""
    finished = False
    attempt = first.attempt
    reply: ReplyMessage = first
    try:
        while True:
            if isinstance(reply, Chunks):
                if reply.attempt != attempt:
                    # The worker that started this stream died and another one restarted the request:
                    # the client already has a partial answer, so end it with an error.
                    rlog.status, rlog.code = 502, ErrorCode.UPSTREAM_ERROR
                    finished = True
                    await edge.dispatcher.cancel(rlog.request_id)
                    yield _sse_error("the worker serving this stream failed; retry the request", ErrorType.API, ErrorCode.UPSTREAM_ERROR)
                    return
                if reply.data:
                    yield b"".join([b"data: " + d + b"\n\n" for d in reply.data])
                if reply.done:
                    finished = True
                    yield b"data: [DONE]\n\n"
                    return
            elif isinstance(reply, Failed):
                finished = True
                rlog.status, rlog.code = reply.status, reply.code
                yield _sse_error(reply.message, reply.type, reply.code)
                return
            try:
                reply = await _next_reply(queue, deadline)
            except GatewayError as exc:
                finished = True
                rlog.status, rlog.code = exc.status, exc.code
                yield _sse_error(exc.message, exc.type, exc.code)
                return
    finally:
        edge.dispatcher.close(rlog.request_id)
        if not finished:
            rlog.status, rlog.code = 499, "client_closed"
            await edge.dispatcher.cancel(rlog.request_id)
        rlog.emit()


def _sse_error(message: str, type: str, code: str | None) -> bytes:
    return b"data: " + error_json(message, type, code) + b"\n\n"
