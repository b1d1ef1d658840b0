"""The one place a request's life on the edge is handled, for every route.

`Pipeline.run` takes a request from its first byte to its end: the caller's key, the body, what
the route reads from it (`Route.parse`), the model and its deployments (`Route.target`),
admission (rate limits, then the budget reservation: a `Lease`), the publish to the work queue,
the worker's first reply, the relay of a stream, and the end of the lease, exactly once, whatever
the outcome (answer, upstream error, client gone, deadline, edge shutdown). A route describes only
what differs: how its body is read and how its answers and errors are written.
"""

from __future__ import annotations

import asyncio
import time
from asyncio import Queue

import msgspec
import structlog

from gateway import admission, metrics
from gateway.asgi_io import (
    Receive,
    Scope,
    Send,
    cancel_on_disconnect,
    failure_error,
    not_post,
    read_body,
    send_json,
)
from gateway.auth import Principal
from gateway.background import HANDED_OVER, JobTaken
from gateway.budgets import WorstCase
from gateway.edge import Edge
from gateway.end_users import attribute, end_user_id, refuse_blocked
from gateway.errors import GatewayError, note_key_guess
from gateway.exchange import Exchange, policy_bytes
from gateway.job_leases import new_job
from gateway.job_takeover import carry_on
from gateway.litellm_headers import litellm_headers
from gateway.refusals import REFUSED_STATUSES, publish_refusal, refused_event
from gateway.request_ids import LOGGED
from gateway.request_span import RequestSpan, phase
from gateway.routes import Background, Call, Route, StreamEncoder, Target
from gateway.tags import tagged
from gateway.upstream_request import upstream_request
from llmgw.contracts import (
    CAPPED_OPERATIONS,
    FREE_OPERATIONS,
    BackgroundJob,
    Chunks,
    Completed,
    ErrorCode,
    ErrorType,
    Failed,
    Priority,
    ReplyMessage,
)
from llmgw.handoff import offer_core
from llmgw.routing import RouterSettings
from llmgw.tracing import start_tracing

log = structlog.get_logger()

# A batch line's scope (gateway/batches/line_call.py, never an HTTP request's) names the caller by
# its key's token here: the line runs as that key, at batch priority.
BATCH_CALLER = "llmgw.batch_caller"
# Set in a batch line's scope when the line was refused before it reached a worker by a rate limit
# or an unavailable bus: the seconds to wait (`retry-after`) before the runner sends it again. Such
# a refusal writes no usage row (the line's one row is that of the attempt that is answered).
BATCH_RETRY = "llmgw.batch_retry"
RETRIED_CODES = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE})


def retry_after(exc: GatewayError) -> float:
    try:
        return max(float(exc.headers.get("retry-after", "1")), 0.1)
    except ValueError:
        return 1.0


def pipeline_of(scope: Scope) -> Pipeline:
    """The edge's pipeline, from the application serving the request (see gateway/app.py)."""
    return scope["app"].state.pipeline


class Pipeline:
    def __init__(self, edge: Edge, router_settings: RouterSettings) -> None:
        self.edge = edge
        self.num_retries = router_settings.num_retries
        self.tracer = start_tracing("edge", edge.settings.tracing)
        self.counted = edge.settings.metrics

    async def run(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        if route.post_only and scope["method"] != "POST":
            await not_post(scope, send)
            return
        scope[LOGGED] = True  # this request's log line and x-request-id are written here
        ex = Exchange(scope)
        if self.tracer is not None:
            ex.span = RequestSpan(self.tracer, scope, ex.request_id, ex.client_request_id)
        counted = self.counted
        if counted:
            metrics.IN_FLIGHT.inc()
        try:
            await self._serve(ex, scope, receive, send, route)
        except GatewayError as exc:
            note_key_guess(scope, exc)
            ex.log.status, ex.log.code = exc.status, exc.code
            headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in exc.headers.items()]
            headers.append((b"x-request-id", ex.answer_id))
            await send_json(send, exc.status, route.error_body(exc, ex.request_id), headers)
            if counted and not ex.published:
                metrics.refused(exc.status, exc.code)
            retry = BATCH_CALLER in scope and not ex.published and exc.code in RETRIED_CODES
            if retry:
                scope[BATCH_RETRY] = retry_after(exc)
            elif ex.principal is not None and not ex.published and exc.status in REFUSED_STATUSES:
                await self._refused(ex, route, exc)
        finally:
            if not ex.detached:
                await self.end(ex, route)

    async def end(self, ex: Exchange, route: Route) -> None:
        """The request is over: its metrics, the end of its lease (if nothing ended it), its log line."""
        if self.counted:
            metrics.IN_FLIGHT.dec()
            metrics.observe(
                route.operation,
                ex.model_group,
                ex.lease.deployment.provider if ex.lease is not None else (ex.provider or ""),
                ex.log.status,
                time.time() - ex.started,
                ex.first_reply_after,
                ex.log.stream,
            )
        if ex.lease is not None:
            await ex.lease.abandon()  # (a no-op when the lease already ended)
            ex.log.lease = ex.lease.end
        ex.log.emit()
        if ex.span is not None:
            ex.span.end(ex.log)

    async def _refused(self, ex: Exchange, route: Route, exc: GatewayError) -> None:
        call = ex.call
        event = refused_event(
            ex.request_id,
            ex.started,
            ex.principal,  # type: ignore[arg-type]  # (checked by the caller)
            (call.operation if call is not None else None) or route.operation,
            call.model if call is not None else "",
            ex.lease.deployment.provider if ex.lease is not None else ex.provider,
            exc.status,
            exc.code,
            (time.time() - ex.started) * 1000.0,
            ex.client_request_id or "",
        )
        await publish_refusal(self.edge.dispatcher.publisher, self.edge.subjects, event)

    async def _serve(self, ex: Exchange, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        edge = self.edge
        incoming = route.incoming(scope)
        batch_caller: str | None = scope.get(BATCH_CALLER)
        with phase(ex.span, "auth"):
            if batch_caller is not None:
                principal = ex.principal = await edge.auth.by_token_fresh(batch_caller)
            else:
                principal = ex.principal = await edge.auth.authenticate_fresh(incoming.authorization, incoming.api_key)
        ex.log.caller = principal.caller.key_alias or f"key:{principal.caller.key_hash[:12]}"
        ex.log.user = principal.caller.user_id
        body = await read_body(receive, incoming.content_length, route.max_body_bytes or edge.settings.max_body_bytes)
        call = ex.call = route.parse(scope, incoming, body, edge)
        principal = ex.principal = tagged(principal, scope["headers"], body)
        principal = ex.principal = attribute(principal, edge.identity, end_user_id(scope, body, edge.end_user_headers))
        refuse_blocked(principal)
        await route.resolve(edge, principal, call)
        ex.log.model, ex.log.stream = call.model, call.stream
        target = route.target(edge, principal, call)
        ex.provider = target.candidates[0].provider if target.candidates else None
        ex.model_group = target.model_group
        timeout = edge.settings.request_timeout if call.timeout is None else min(edge.settings.request_timeout, call.timeout)
        deadline = ex.started + timeout
        system_prompts = edge.access.system_prompts(principal, edge.identity.global_system_prompt()) if route.policies else []
        prompt_bytes = len(call.body) if call.prompt_bytes is None else call.prompt_bytes
        worst = WorstCase(
            prompt_bytes + policy_bytes(system_prompts),
            call.max_tokens,
            call.n,
            call.units,
            capped=(call.operation or route.operation) in CAPPED_OPERATIONS,
            free=(call.operation or route.operation) in FREE_OPERATIONS,
        )
        with phase(ex.span, "admission"):
            lease = ex.lease = await admission.admit(
                edge.ratelimits, edge.budgets, principal, target.model_group, target.candidates, worst, ex.request_id, deadline
            )
        route.prepare(edge, call, lease.deployment)
        background = route.background(edge, principal, call, ex.request_id)
        reply_stream = None if background is None else edge.subjects.job_replies(ex.request_id)
        request = upstream_request(
            edge, self.num_retries, ex, route, principal, call, target, deadline, system_prompts, reply_stream
        )
        queue = edge.dispatcher.open(ex.request_id) if background is None else None
        edge.router.started(lease.deployment.id)
        held: tuple[BackgroundJob, int] | None = None
        try:
            try:
                if len(request.body) > edge.blobs.threshold:  # too large for one bus message
                    await edge.blobs.put(ex.request_id, request.body)
                    request = msgspec.structs.replace(request, body=b"", body_blob=ex.request_id)
                if background is not None:  # its lease first: whoever carries it on needs its record
                    record = new_job(edge.dispatcher.edge_id, background, ex.request_id, ex.client_request_id, principal.caller)
                    held = await edge.job_leases.begin(record, body, lease.deployment.id, ex.started, deadline)
                with phase(ex.span, "publish"):
                    traceparent = ex.span.publishing(request) if ex.span is not None else None
                    priority = Priority.BATCH if batch_caller is not None else principal.priority
                    await edge.dispatcher.submit(lease.deployment.provider, request, priority, traceparent)
            except GatewayError:
                await lease.release()  # it never reached a worker
                if request.body_blob is not None:
                    await edge.blobs.delete(request.body_blob)
                if held is not None:
                    await edge.job_leases.end(held[0], edge.dispatcher.edge_id)
                raise
            ex.published = True
            if background is not None and held is not None:
                # The client does not wait: the rest of the request is a task of the edge's own.
                background.queued(ex.request_id, deadline)
                job = carry_on(self, ex, route, principal, call, target, deadline, background, *held)
                edge.jobs.run(background.key, job)
                ex.detached = True
                headers = [(b"x-request-id", ex.answer_id), *lease.headers()]
                await background.accepted(send, receive, headers)
                return
            assert queue is not None
            await self._deliver(ex, route, principal, call, target, queue, deadline, send, receive)
        finally:
            if not ex.detached:
                self._finished(ex)

    def _finished(self, ex: Exchange) -> None:
        """No reply is awaited any more: the reply queue closes, the router learns how it went."""
        lease = ex.lease
        assert lease is not None
        self.edge.dispatcher.close(ex.request_id)
        latency = ex.first_reply_after if ex.first_reply_after is not None else time.time() - ex.started
        self.edge.router.finished(lease.deployment.id, ex.answered_by, latency)

    async def run_background(
        self,
        ex: Exchange,
        route: Route,
        principal: Principal,
        call: Call,
        target: Target,
        queue: Queue[ReplyMessage],
        deadline: float,
        background: Background,
    ) -> bool:
        """A background request from its first reply to its end, in a task the edge owns: the
        answer goes to the route's job instead of a client, the lease ends exactly once. False
        when the edge handed it over as it stopped (gateway/background.py: another edge ends it)."""
        error: GatewayError | None = None
        cancelled = handed_over = False
        try:
            await self._deliver(ex, route, principal, call, target, queue, deadline, background.send, background.receive)
        except GatewayError as exc:
            error = exc
            ex.log.status, ex.log.code = exc.status, exc.code
        except JobTaken:  # (another edge holds its lease now: it stops here, its worker going on)
            log.warning("background_job_taken_elsewhere", request_id=ex.request_id, job_id=background.key)
            cancelled = handed_over = True
            ex.log.status, ex.log.code = 499, "handed_over"
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # (the job was cancelled on purpose: it ends as it should below)
            cancelled = True
            handed_over = self.edge.jobs.reason(background.key) == HANDED_OVER
            ex.log.status, ex.log.code = 499, "handed_over" if handed_over else "cancelled"
            if not handed_over:
                await self.edge.dispatcher.cancel(ex.request_id)  # (also before the worker's first reply)
        except Exception:
            log.exception("background_request_failed", request_id=ex.request_id)
            error = GatewayError(500, "internal error in the gateway", ErrorType.API, ErrorCode.INTERNAL)
            ex.log.status, ex.log.code = 500, ErrorCode.INTERNAL
        finally:
            self._finished(ex)
        if handed_over:
            await self.end(ex, route)
            return False
        try:
            await background.ended(error, self.edge.jobs.reason(background.key) if cancelled else None)
        except JobTaken:  # (taken over before its end was kept: the other edge ends it)
            log.warning("background_job_taken_elsewhere", request_id=ex.request_id, job_id=background.key)
            handed_over = True
        except Exception:
            log.exception("background_end_failed", request_id=ex.request_id)
        finally:
            await self.end(ex, route)
        return not handed_over

    async def _deliver(
        self,
        ex: Exchange,
        route: Route,
        principal: Principal,
        call: Call,
        target: Target,
        queue: Queue[ReplyMessage],
        deadline: float,
        send: Send,
        receive: Receive,
    ) -> None:
        """From the worker's first reply to the end of the answer (whole, or relayed)."""
        edge, lease = self.edge, ex.lease
        assert lease is not None
        first = await edge.dispatcher.next_reply(queue, deadline)
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
            headers.append((b"x-request-id", ex.answer_id))
            headers.extend(lease.headers())
            headers.extend(litellm_headers(ex.request_id, target.model_group, lease.deployment.id, first))
            headers.append((b"content-length", str(len(answer)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": answer})
            offer_core()  # Granian's thread writes the answer before the log line is made
            if status < 400:
                await route.answered(edge, principal, call, ex.request_id, answer)
            return
        encoder = route.stream(call, ex.request_id)
        extra = litellm_headers(ex.request_id, target.model_group, lease.deployment.id, first)
        if await cancel_on_disconnect(self._relay(ex, first, queue, deadline, encoder, send, extra), receive):
            await route.answered(edge, principal, call, ex.request_id, None)

    async def _relay(
        self,
        ex: Exchange,
        first: Chunks,
        queue: Queue[ReplyMessage],
        deadline: float,
        encoder: StreamEncoder,
        send: Send,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> bool:
        """Relay the worker's chunks the moment they arrive; errors end the stream. True when the
        stream ended as the worker finished it (its answer went out whole)."""
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
            headers.append((b"x-request-id", ex.answer_id))
            headers.extend(lease.headers())
            headers.extend(extra_headers)
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
                        return False
                    data = encoder.data(reply.data)
                    if reply.done:
                        await lease.settle(reply.cost, reply.tokens)
                        await last(data + encoder.end())
                        return True
                    if data:
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                elif isinstance(reply, Failed):
                    await lease.settle(reply.cost, reply.tokens)
                    rlog.status, rlog.code = reply.status, reply.code
                    await last(encoder.error(reply.status, reply.message, reply.type, reply.code))
                    return False
                try:
                    reply = await self.edge.dispatcher.next_reply(queue, deadline)
                except GatewayError as exc:
                    rlog.status, rlog.code = exc.status, exc.code
                    await last(encoder.error(exc.status, exc.message, exc.type, exc.code))
                    return False
        finally:
            if not finished and not (ex.job_key is not None and self.edge.jobs.reason(ex.job_key) == HANDED_OVER):
                rlog.status, rlog.code = 499, "client_closed"
                await self.edge.dispatcher.cancel(ex.request_id)
