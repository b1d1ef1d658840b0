"""The one place a request's life on the edge is handled, for every route.

`Pipeline.run` takes a request from its first byte to its end: the caller's key, the body, what
the route reads from it (`Route.parse`), the model and its deployments (`Route.target`),
admission (rate limits, then the budget reservation: a `Lease`), the publish to the work queue,
the worker's first reply, the relay of a stream, and the end of the lease, exactly once, whatever
the outcome (answer, upstream error, client gone, deadline, edge shutdown). A route describes only
what differs: how its body is read and how its answers and errors are written.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from asyncio import Queue
from typing import Any, Protocol

from gateway import admission
from gateway.admission import Lease
from gateway.asgi_io import (
    Receive,
    RequestLog,
    Scope,
    Send,
    cancel_on_disconnect,
    failure_error,
    next_reply,
    not_post,
    read_body,
    request_headers,
    send_json,
)
from gateway.auth import Principal
from gateway.client_upstream import client_upstream
from gateway.edge import Edge
from gateway.errors import GatewayError, error_json, note_key_guess
from llmgw.contracts import (
    Chunks,
    Completed,
    ErrorCode,
    ErrorType,
    Failed,
    NativeCall,
    ReplyMessage,
    UpstreamRequest,
)
from llmgw.handoff import offer_core
from llmgw.routing import RouterSettings

Headers = list[tuple[bytes, bytes]]


class Incoming:
    """The request line and the headers the pipeline reads (a route may add what it needs)."""

    __slots__ = ("api_key", "authorization", "content_length", "path", "query")

    def __init__(self, authorization: str | None, api_key: str | None, content_length: int | None) -> None:
        self.authorization = authorization
        self.api_key = api_key  # a key sent in a header of its own (api-key, x-api-key, ...)
        self.content_length = content_length
        self.path = ""  # native routes: the checked path below the provider's prefix
        self.query: list[tuple[str, str]] = []  # native routes: the query string's pairs


class Call:
    """What a route read from the body: the model asked for, and what admission needs to know."""

    __slots__ = ("body", "include_usage", "max_tokens", "model", "native", "stream", "timeout")

    def __init__(
        self,
        model: str,
        body: bytes,
        *,
        stream: bool = False,
        include_usage: bool = False,
        max_tokens: int | None = None,
        timeout: float | None = None,
        native: NativeCall | None = None,
    ) -> None:
        self.model = model  # as the client named it
        self.body = body  # what goes to the worker
        self.stream = stream
        self.include_usage = include_usage
        self.max_tokens = max_tokens  # the completion length asked for (the budget's worst case)
        self.timeout = timeout  # seconds the client allows (at most the edge's request timeout)
        self.native = native


class Target:
    """The model group a call goes to and the deployments that may serve it, in order."""

    __slots__ = ("candidates", "context_fallbacks", "fallbacks", "model_group")

    def __init__(
        self, model_group: str, candidates: list, fallbacks: list[str] | None = None, context_fallbacks: list[str] | None = None
    ) -> None:
        self.model_group = model_group
        self.candidates = candidates  # Deployments, the first one first
        self.fallbacks = fallbacks or []  # deployment ids of fallback groups
        self.context_fallbacks = context_fallbacks or []


class StreamEncoder(Protocol):
    """How a route writes a stream the worker relays: its head, its chunks, its end, its errors."""

    def head(self, first: Chunks) -> tuple[int, Headers]: ...

    def data(self, chunks: list[bytes]) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, status: int, message: str, type: str, code: str | None) -> bytes: ...


class Route(ABC):
    """What one kind of route does differently; everything else is the pipeline's."""

    operation: str  # llmgw.contracts.Operation
    post_only = True  # False: any method (native passthrough)
    policies = True  # system prompts, client-supplied upstreams and the router's fallbacks apply

    def incoming(self, scope: Scope) -> Incoming:
        """The headers (and, for native routes, the checked path) before the key is checked."""
        return Incoming(*request_headers(scope))

    @abstractmethod
    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call: ...

    def target(self, edge: Edge, principal: Principal, call: Call) -> Target:
        model = edge.access.resolve(principal, call.model)
        plan = edge.router.plan(model)
        return Target(model, plan.deployments, plan.fallbacks, plan.context_fallbacks)

    def whole(self, reply: Completed, call: Call, request_id: str) -> tuple[int, Headers, bytes]:
        """(status, headers, body) of a whole answer; the default: the worker's OpenAI JSON."""
        return 200, [(b"content-type", b"application/json")], reply.body

    @abstractmethod
    def stream(self, call: Call, request_id: str) -> StreamEncoder: ...

    def error_body(self, exc: GatewayError, request_id: str) -> bytes:
        """An error answered before anything else was sent; the default: OpenAI's shape."""
        return error_json(exc.message, exc.type, exc.code, exc.param)


def pipeline_of(scope: Scope) -> Pipeline:
    """The edge's pipeline, from the application serving the request (see gateway/app.py)."""
    return scope["app"].state.pipeline


def new_request_id() -> str:
    return f"req-{os.urandom(16).hex()}"


class Exchange:
    """One request in the pipeline: what is known of it so far, for its end and its log line."""

    __slots__ = ("answered_by", "first_reply_after", "lease", "log", "request_id", "started")

    def __init__(self) -> None:
        self.started = time.time()
        self.request_id = new_request_id()
        self.log = RequestLog(self.request_id, self.started)
        self.lease: Lease | None = None
        self.answered_by: str | None = None
        self.first_reply_after: float | None = None


class Pipeline:
    def __init__(self, edge: Edge, router_settings: RouterSettings) -> None:
        self.edge = edge
        self.num_retries = router_settings.num_retries

    async def run(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        if route.post_only and scope["method"] != "POST":
            await not_post(scope, send)
            return
        ex = Exchange()
        try:
            await self._serve(ex, scope, receive, send, route)
        except GatewayError as exc:
            note_key_guess(scope, exc)
            ex.log.status, ex.log.code = exc.status, exc.code
            headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in exc.headers.items()]
            headers.append((b"x-request-id", ex.request_id.encode()))
            await send_json(send, exc.status, route.error_body(exc, ex.request_id), headers)
        finally:
            if ex.lease is not None:
                await ex.lease.abandon()  # (a no-op when the lease already ended)
                ex.log.lease = ex.lease.end
            ex.log.emit()

    async def _serve(self, ex: Exchange, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        edge = self.edge
        incoming = route.incoming(scope)
        principal = await edge.auth.authenticate_fresh(incoming.authorization, incoming.api_key)
        body = await read_body(receive, incoming.content_length, edge.settings.max_body_bytes)
        call = route.parse(scope, incoming, body, edge)
        ex.log.model, ex.log.stream = call.model, call.stream
        target = route.target(edge, principal, call)
        timeout = edge.settings.request_timeout if call.timeout is None else min(edge.settings.request_timeout, call.timeout)
        deadline = ex.started + timeout
        lease = ex.lease = await admission.admit(
            edge.ratelimits,
            edge.budgets,
            principal,
            target.model_group,
            target.candidates,
            len(call.body),
            call.max_tokens,
            ex.request_id,
            deadline,
        )
        request = self._upstream_request(ex, route, principal, call, target, deadline)
        queue = edge.dispatcher.open(ex.request_id)
        edge.router.started(lease.deployment.id)
        try:
            try:
                await edge.dispatcher.submit(lease.deployment.provider, request, principal.priority)
            except GatewayError:
                await lease.release()  # it never reached a worker
                raise
            first = await next_reply(queue, deadline)
            ex.answered_by, ex.first_reply_after = first.deployment_id, time.time() - ex.started
            if isinstance(first, Failed):
                await lease.settle(first.cost, first.tokens)
                raise failure_error(first)
            if isinstance(first, Completed):
                # Before the client has its answer, the budget holds only what the request cost:
                # its next request cannot find the budget taken by this one.
                await lease.settle(first.cost, first.tokens)
                status, headers, answer = route.whole(first, call, ex.request_id)
                ex.log.status = status
                headers.append((b"x-request-id", ex.request_id.encode()))
                headers.extend(lease.headers())
                headers.append((b"content-length", str(len(answer)).encode()))
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": answer})
                offer_core()  # Granian's thread writes the answer before the log line is made
                return
            await cancel_on_disconnect(self._relay(ex, first, queue, deadline, route.stream(call, ex.request_id), send), receive)
        finally:
            edge.dispatcher.close(ex.request_id)
            latency = ex.first_reply_after if ex.first_reply_after is not None else time.time() - ex.started
            edge.router.finished(lease.deployment.id, ex.answered_by, latency)

    def _upstream_request(
        self, ex: Exchange, route: Route, principal: Principal, call: Call, target: Target, deadline: float
    ) -> UpstreamRequest:
        edge, lease = self.edge, ex.lease
        assert lease is not None
        deployment = lease.deployment
        extra: dict[str, Any] = {}
        if route.policies:
            extra.update(client_upstream(principal, call.body, edge.cipher))
            extra["system_prompts"] = edge.access.system_prompts(principal, edge.identity.global_system_prompt())
            extra["fallbacks"] = [d.id for d in target.candidates if d is not deployment] + target.fallbacks
            extra["context_fallbacks"] = target.context_fallbacks
            extra["num_retries"] = self.num_retries
        return UpstreamRequest(
            request_id=ex.request_id,
            reply_to=edge.dispatcher.reply_subject,
            operation=route.operation,
            model_group=target.model_group,
            deployment_id=deployment.id,
            body=call.body,
            stream=call.stream,
            include_usage=call.include_usage,
            deadline=deadline,
            received_at=ex.started,
            caller=principal.caller,
            cost_cap=lease.cost_cap,
            ledgers=lease.ledgers,
            native=call.native,
            **extra,
        )

    async def _relay(
        self, ex: Exchange, first: Chunks, queue: Queue[ReplyMessage], deadline: float, encoder: StreamEncoder, send: Send
    ) -> None:
        """Relay the worker's chunks the moment they arrive; errors end the stream."""
        rlog, lease = ex.log, ex.lease
        assert lease is not None
        finished = False
        reply: ReplyMessage = first

        async def last(data: bytes) -> None:
            nonlocal finished
            finished = True
            await send({"type": "http.response.body", "body": data, "more_body": False})

        try:
            status, headers = encoder.head(first)
            rlog.status = status
            headers.append((b"x-request-id", ex.request_id.encode()))
            headers.extend(lease.headers())
            await send({"type": "http.response.start", "status": status, "headers": headers})
            while True:
                if isinstance(reply, Chunks):
                    if reply.attempt != first.attempt:
                        # The worker that started this stream died and another one took the request
                        # again: the client already has part of an answer, so end it with an error.
                        rlog.status, rlog.code = 502, ErrorCode.UPSTREAM_ERROR
                        await self.edge.dispatcher.cancel(ex.request_id)
                        message = "the worker serving this stream failed; retry the request"
                        await last(encoder.error(502, message, ErrorType.API, ErrorCode.UPSTREAM_ERROR))
                        return
                    data = encoder.data(reply.data)
                    if reply.done:
                        await lease.settle(reply.cost, reply.tokens)
                        await last(data + encoder.end())
                        return
                    if data:
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                elif isinstance(reply, Failed):
                    await lease.settle(reply.cost, reply.tokens)
                    rlog.status, rlog.code = reply.status, reply.code
                    await last(encoder.error(reply.status, reply.message, reply.type, reply.code))
                    return
                try:
                    reply = await next_reply(queue, deadline)
                except GatewayError as exc:
                    rlog.status, rlog.code = exc.status, exc.code
                    await last(encoder.error(exc.status, exc.message, exc.type, exc.code))
                    return
        finally:
            if not finished:
                rlog.status, rlog.code = 499, "client_closed"
                await self.edge.dispatcher.cancel(ex.request_id)
