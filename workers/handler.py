"""One request, start to finish: call the upstream, send the answer, publish usage, then ack."""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from llmgw.blobs import Blobs
from llmgw.bus import AckedPublisher
from llmgw.catalog import PROVIDERS
from llmgw.config import Deployment, Secret
from llmgw.contracts import (
    Completed,
    ErrorCode,
    ErrorType,
    Subjects,
    UpstreamRequest,
    UsageSource,
    UsageStatus,
    decode_request,
)
from llmgw.handoff import let_writes_out
from llmgw.routing import CONTEXT_WINDOW_CODES, RETRYABLE_STATUSES, CooldownBoard
from llmgw.tracing import start_tracing
from workers.budget_cap import apply_cost_cap
from workers.credentials import DeploymentTable
from workers.early_cancels import EarlyCancels
from workers.job_replies import JobReplies
from workers.keepalive import KeepAlive
from workers.operations import AnswerKind, answer_kind
from workers.providers.base import Provider, StallGuard
from workers.providers.errors import UpstreamError
from workers.providers.request_body import RequestBody, estimate_prompt_tokens
from workers.raw_call import call_raw
from workers.recent_replies import RecentReplies
from workers.relay import ChunkRelay
from workers.reply_sender import ReplySender
from workers.request_span import WorkerSpan
from workers.settings import WorkerSettings
from workers.usage import Usage
from workers.usage_events import Outcome, UsageRecorder

log = structlog.get_logger()

MAX_RETRY_AFTER = 10.0  # an upstream's retry-after is honoured up to this many seconds


class RequestHandler:
    def __init__(
        self,
        nc: Client,
        publisher: AckedPublisher,
        subjects: Subjects,
        settings: WorkerSettings,
        providers: dict[str, Provider],
        deployments: DeploymentTable,
        cooldowns: CooldownBoard,
        blobs: Blobs,
    ) -> None:
        self.blobs = blobs
        self.deployments = deployments
        self.cooldowns = cooldowns
        # Requests in flight whose client went away, served to their end anyway
        # (LLMGW_ON_CLIENT_DISCONNECT=finish): their usage is the provider's exact count.
        self.client_gone: set[str] = set()
        self.cancelled_early = EarlyCancels()  # (workers/early_cancels.py)
        self.router_settings = cooldowns.settings
        self.nc = nc
        self.replies = RecentReplies(nc)  # whole answers and failures, sent again after a reconnect
        self.publisher = publisher
        self.subjects = subjects
        self.settings = settings
        self.providers = providers
        self.usage = UsageRecorder(publisher, subjects, settings)
        self.job_replies = JobReplies(publisher)  # a background job's replies, kept in JetStream
        self.send = ReplySender(blobs, self.replies, self.job_replies)
        self.tracer = start_tracing("worker", settings.tracing)

    async def handle(self, msg: Msg) -> None:
        try:
            request = decode_request(msg.data)
        except msgspec.DecodeError as exc:
            log.error("request_undecodable", error=str(exc))
            await msg.term()
            return
        task = asyncio.current_task()
        if task is not None:
            task.set_name(request.request_id)  # a Cancel finds the task by it
        if request.body_blob is not None:  # a body too large for the message waits in the blobs store
            body = await self.blobs.get(request.body_blob)
            if body is None:  # (expired: the request waited hours, far past its deadline)
                log.error("request_body_missing", request_id=request.request_id, blob=request.body_blob)
                missing = UpstreamError(500, "the request's body is no longer stored", ErrorType.API, ErrorCode.INTERNAL)
                await self.send.failure(request, msg.metadata.num_delivered or 1, missing)
                await msg.term()
                return
            request = msgspec.structs.replace(request, body=body)
        attempt = msg.metadata.num_delivered or 1
        heartbeat = KeepAlive(msg, max(self.settings.ack_wait / 3.0, 0.2))
        started = time.time()
        deployment = self.deployments.get(request.deployment_id)
        if deployment is None:  # added at run time a moment ago: its record may still be on its way
            deployment = await self.deployments.wait_for(request.deployment_id)
        outcome = Outcome(deployment=deployment, response_id=request.response_id or "")
        span = WorkerSpan(self.tracer, msg.headers, request, attempt) if self.tracer is not None else None
        try:
            if self.cancelled_early.take(request.request_id):  # its client gave up on it while it waited
                outcome.status, outcome.http_status, outcome.error_code = UsageStatus.CANCELLED, 499, "client_closed"
            else:
                await self._serve(request, attempt, outcome, started, span)
            if request.request_id in self.client_gone:
                self.client_gone.discard(request.request_id)
                if outcome.status == UsageStatus.SUCCESS:  # read to the end, but the client did not get it all
                    outcome.status, outcome.http_status, outcome.error_code = UsageStatus.CANCELLED, 499, "client_closed"
            latency_ms = (time.time() - started) * 1000.0
            if span is not None:
                span.end(outcome)
            if outcome.deployment is not None:
                traced = span.traceparent() if span is not None else None
                await self.usage.record(request, attempt, outcome.deployment, outcome, latency_ms, traced)
        finally:
            heartbeat.cancel()
        await msg.ack()
        if request.body_blob is not None:
            await self.blobs.delete(request.body_blob)
        log.info(
            "request",
            request_id=request.request_id,
            model=request.model_group,
            deployment=outcome.deployment.id if outcome.deployment else request.deployment_id,
            stream=request.stream,
            attempt=attempt,
            tries=outcome.tries,
            status=outcome.http_status,
            outcome=outcome.status,
            latency_ms=round(latency_ms, 2),
            prompt_tokens=outcome.usage.prompt_tokens if outcome.usage else 0,
            completion_tokens=outcome.usage.completion_tokens if outcome.usage else 0,
        )

    def _plan(self, request: UpstreamRequest, ids: list[str]) -> list[Deployment]:
        """The deployments to call in order: `num_retries` more tries of each before the next;
        cooled-down ones skipped unless nothing else is left; ones this worker cannot call dropped."""
        usable = [
            d for d in (self.deployments.get(i) for i in ids) if d is not None and PROVIDERS[d.provider].family in self.providers
        ]
        warm = [d for d in usable if not self.cooldowns.cooling(d.id)] or usable[:1]
        return [d for d in warm for _ in range(1 + max(request.num_retries, 0))]

    async def _serve(
        self, request: UpstreamRequest, attempt: int, outcome: Outcome, started: float, span: WorkerSpan | None
    ) -> None:
        relay: ChunkRelay | None = None
        body = RequestBody(request.body)  # decoded (at most) once, whatever the number of tries
        try:
            if request.deadline <= started:
                outcome.status, outcome.http_status = UsageStatus.EXPIRED, 504
                await self.send.failure(
                    request,
                    attempt,
                    UpstreamError(504, "no worker was free before the deadline", ErrorType.TIMEOUT, ErrorCode.TIMEOUT),
                )
                return
            plan = self._plan(request, [request.deployment_id, *request.fallbacks])
            if not plan:
                raise UpstreamError(
                    500, f"deployment {request.deployment_id} is not configured on this worker", ErrorType.API, ErrorCode.INTERNAL
                )
            if answer_kind(request)[0] != AnswerKind.WHOLE:
                relay = ChunkRelay(
                    self.replies,
                    request.reply_to,
                    request.request_id,
                    attempt,
                    self.settings.coalesce_interval,
                    self.settings.coalesce_max,
                    self.blobs,
                    self.job_replies.sender(request, attempt),
                )
            index = 0
            while True:
                deployment = outcome.deployment = plan[index]
                if relay is not None:
                    relay.deployment_id = deployment.id
                outcome.tries += 1 if index else 0
                call_span = span.upstream_call(request, deployment, outcome.tries) if span is not None else None
                try:
                    await self._call(request, body, attempt, deployment, outcome, started, relay)
                    if span is not None and call_span is not None:
                        span.call_ended(call_span, outcome, 200)
                    self.cooldowns.succeeded(deployment.id)
                    return
                except UpstreamError as exc:
                    if span is not None and call_span is not None:
                        span.call_ended(call_span, outcome, exc.status, exc.code or str(exc.status))
                    if exc.status in RETRYABLE_STATUSES:
                        await self.cooldowns.failed(deployment.id, f"{exc.status} {exc.code or ''}".strip())
                    if exc.code in CONTEXT_WINDOW_CODES and request.context_fallbacks:
                        plan = plan[: index + 1] + self._plan(request, request.context_fallbacks)
                        request = msgspec.structs.replace(request, context_fallbacks=[])
                    elif exc.status not in RETRYABLE_STATUSES or exc.code == ErrorCode.BUDGET_EXCEEDED:
                        raise
                    if index + 1 >= len(plan) or (relay is not None and relay.started) or time.time() >= request.deadline:
                        raise
                    index += 1
                    if plan[index] is deployment:  # another try of the same deployment: back off first
                        await asyncio.sleep(self._backoff(request, outcome.tries, exc.retry_after))
                    log.info(
                        "upstream_retry",
                        request_id=request.request_id,
                        failed=deployment.id,
                        status=exc.status,
                        next=plan[index].id,
                    )
                except BaseException:  # (cancelled: the client went away; or a bug, answered as a 500 below)
                    if span is not None and call_span is not None:
                        span.call_ended(call_span, outcome, 499, "cancelled")
                    raise
        except UpstreamError as exc:
            outcome.status = (
                UsageStatus.BUDGET_STOPPED
                if exc.code == ErrorCode.BUDGET_EXCEEDED
                else UsageStatus.UPSTREAM_ERROR
                if exc.status != 500
                else UsageStatus.ERROR
            )
            outcome.http_status, outcome.error_code = exc.status, exc.code
            await self.send.failure(request, attempt, exc, relay, outcome)
        except asyncio.CancelledError:
            # Only a Cancel from the edge cancels a handler: the client went away.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            outcome.status, outcome.http_status, outcome.error_code = UsageStatus.CANCELLED, 499, "client_closed"
        except Exception:
            log.exception("request_failed", request_id=request.request_id)
            outcome.status, outcome.http_status, outcome.error_code = UsageStatus.ERROR, 500, ErrorCode.INTERNAL
            await self.send.failure(
                request,
                attempt,
                UpstreamError(500, "internal error in the gateway worker", ErrorType.API, ErrorCode.INTERNAL),
                relay,
                outcome,
            )
        if outcome.usage is None and relay is not None and relay.started and not relay.raw:
            # The stream broke off before the provider reported usage: estimate what was used.
            outcome.usage = Usage(
                prompt_tokens=estimate_prompt_tokens(body, request.operation), completion_tokens=relay.sent + len(relay.buffer)
            )
            outcome.usage_source = UsageSource.ESTIMATED

    def _backoff(self, request: UpstreamRequest, tries: int, retry_after: float | None) -> float:
        delay = self.router_settings.retry_backoff * (2 ** max(tries - 2, 0))
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return max(min(delay, request.deadline - time.time() - 0.05), 0.0)

    async def _call(
        self,
        request: UpstreamRequest,
        body: RequestBody,
        attempt: int,
        deployment: Deployment,
        outcome: Outcome,
        started: float,
        relay: ChunkRelay | None,
    ) -> None:
        """One upstream call on `deployment`; the answer goes to the edge."""
        provider = self.providers[PROVIDERS[deployment.provider].family]
        if request.client_api_base or request.client_api_key_sealed:  # a key allowed to bring its own upstream
            sealed = request.client_api_key_sealed
            client_key = self.deployments.cipher.decrypt(sealed) if sealed else None
            if sealed and client_key is None:
                raise UpstreamError(
                    500, "the request's client key was sealed under another secret", ErrorType.API, ErrorCode.INTERNAL
                )
            deployment = msgspec.structs.replace(
                deployment,
                api_base=(request.client_api_base or deployment.api_base or "").rstrip("/") or None,
                api_key=Secret(client_key) if client_key else deployment.api_key,
            )
        model_group = (
            request.model_group if deployment.id == request.deployment_id or deployment.is_wildcard else deployment.model_name
        )
        outcome.upstream_model = deployment.upstream_model_for(model_group)
        stall = deployment.stream_timeout or self.settings.stream_timeout
        kind, method = answer_kind(request)
        if kind == AnswerKind.RAW:
            await call_raw(self.send, request, body, attempt, deployment, provider, method, outcome, started, relay, stall)
            return
        meter, body = apply_cost_cap(request, body, deployment, outcome.upstream_model)
        if kind == AnswerKind.CHUNKS:
            assert relay is not None
            async with StallGuard(stall, deployment) as guard:
                async for item in getattr(provider, method)(deployment, request, outcome.upstream_model, body):
                    guard.touch()
                    if type(item) is bytes:
                        if outcome.ttft is None:
                            outcome.ttft = time.time() - started
                            outcome.saw(item)
                        if meter is not None and not meter.take(item):
                            outcome.usage = Usage(
                                prompt_tokens=estimate_prompt_tokens(body, request.operation),
                                completion_tokens=meter.estimate(),
                                estimated=True,
                            )
                            outcome.usage_source = UsageSource.ESTIMATED
                            raise UpstreamError(
                                429,
                                "the budget of this key, user or team is used up: the stream was stopped",
                                "budget_exceeded",
                                ErrorCode.BUDGET_EXCEEDED,
                            )
                        await relay.add(item)
                    elif isinstance(item, Usage):
                        outcome.took(item)
                        if meter is not None:
                            meter.reported(item.completion_tokens)
            await relay.finish(outcome.cost(deployment), deployment.id, outcome.tries, outcome.tokens())
            return
        completion = await getattr(provider, method)(deployment, request, outcome.upstream_model, body)
        outcome.saw(completion.body)
        if completion.usage is not None:
            outcome.took(completion.usage)
        else:  # the provider did not count (some embedding APIs): estimate rather than record nothing
            outcome.usage = Usage(prompt_tokens=estimate_prompt_tokens(body, request.operation))
            outcome.usage_source = UsageSource.ESTIMATED
        reply = Completed(
            request_id=request.request_id,
            attempt=attempt,
            body=completion.body,
            cost=outcome.cost(deployment),
            deployment_id=deployment.id,
            tries=outcome.tries,
            tokens=outcome.tokens(),
        )
        await self.send.whole(request, reply)
        await let_writes_out()  # the answer leaves before the usage event is built
