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
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send

from gateway import admission
from gateway.anthropic_messages import (
    StreamTranslator,
    anthropic_error_json,
    anthropic_error_type,
    chat_completion_to_message,
    messages_to_chat_body,
    parse_messages_request,
)
from gateway.asgi_io import (
    RequestLog,
    cancel_on_disconnect,
    failure_error,
    next_reply,
    not_post,
    read_body,
    request_headers,
    send_error,
    send_json,
)
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
from llmgw.handoff import offer_core

log = structlog.get_logger()

_encoder = msgspec.json.Encoder()
JSON = "application/json"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


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


def build_routes(edge: Edge) -> list:
    max_body = edge.settings.max_body_bytes

    async def dispatch(scope: Scope, receive: Receive, send: Send, operation: str, dialect: Dialect | None = None) -> None:
        if scope["method"] != "POST":
            await not_post(scope, send)
            return
        started = time.time()
        request_id = f"req-{os.urandom(16).hex()}"
        rlog = RequestLog(request_id, started)
        handed_to_stream = False
        answered_by: str | None = None
        try:
            authorization, api_key, content_length = request_headers(scope)
            principal = await edge.auth.authenticate_fresh(authorization, api_key)
            body = await read_body(receive, content_length, max_body)
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
                    principal,
                    model,
                    deployment,
                    deployment.upstream_model_for(model),
                    len(body),
                    max_tokens,
                    request_id,
                    deadline,
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
                first = await next_reply(queue, deadline)
                answered_by = first.deployment_id
                if isinstance(first, Failed):
                    await edge.budgets.settle(request_id, reserved, ledgers, first.cost)
                    await admission.release(edge.ratelimits, admitted, first.tokens)
                    raise failure_error(first)
                if stream and isinstance(first, Chunks):
                    handed_to_stream = True

                    async def settle(cost: float | None, tokens: int | None = None) -> None:
                        await edge.budgets.settle(request_id, reserved, ledgers, cost)
                        await admission.release(edge.ratelimits, admitted, tokens)
                        settled.append(True)

                    settled: list[bool] = []

                    first_chunk_after = time.time() - started
                    relay = _relay_stream(
                        edge,
                        first,
                        queue,
                        deadline,
                        rlog,
                        send,
                        settle,
                        dialect and dialect.stream(parsed.model, request_id),
                        admitted.headers(),
                    )
                    try:
                        await cancel_on_disconnect(relay, receive)
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
                    await send_json(send, 200, answer, [(b"x-request-id", request_id.encode()), *admitted.headers()])
                    offer_core()  # Granian's thread writes the answer before the log line is made
                    return
                raise GatewayError(502, "the worker answered in an unexpected form", ErrorType.API, ErrorCode.INTERNAL)
            finally:
                if not handed_to_stream:
                    edge.dispatcher.close(request_id)
                    edge.router.finished(routed, answered_by, time.time() - started)
                    await admission.release(edge.ratelimits, admitted, 0)  # (a no-op once released with tokens)
        except GatewayError as exc:
            rlog.status, rlog.code = exc.status, exc.code
            await send_error(send, exc, request_id, dialect)
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
        raise GatewayError(
            400, "`api_base` must be an http(s) URL", ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, "api_base"
        )
    out = {}
    if base:
        out["client_api_base"] = base
    if given.api_key:
        out["client_api_key"] = given.api_key
    return out


async def _relay_stream(
    edge: Edge,
    first: Chunks,
    queue: asyncio.Queue[ReplyMessage],
    deadline: float,
    rlog: RequestLog,
    send: Send,
    on_end: Callable[[float | None, int | None], Awaitable[None]],
    translator: StreamTranslator | None = None,
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
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*SSE_HEADERS, (b"x-request-id", rlog.request_id.encode()), *extra_headers],
            }
        )
        while True:
            if isinstance(reply, Chunks):
                if reply.attempt != attempt:
                    # The worker that started this stream died and another one restarted the request:
                    # the client already has a partial answer, so end it with an error.
                    rlog.status, rlog.code = 502, ErrorCode.UPSTREAM_ERROR
                    finished = True
                    await edge.dispatcher.cancel(rlog.request_id)
                    await body(
                        sse_error(
                            "the worker serving this stream failed; retry the request",
                            ErrorType.API,
                            ErrorCode.UPSTREAM_ERROR,
                            502,
                        ),
                        False,
                    )
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
                reply = await next_reply(queue, deadline)
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
