"""One request, start to finish: call the upstream, send the answer, publish usage, then ack."""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from llmgw.bus import AckedPublisher
from llmgw.catalog import PROVIDERS
from llmgw.config import Deployment, Secret
from llmgw.contracts import (
    MSG_ID_HEADER,
    Completed,
    ErrorCode,
    ErrorType,
    Failed,
    Operation,
    Subjects,
    UpstreamRequest,
    UsageEvent,
    UsageSource,
    UsageStatus,
    decode_request,
    encode_internal,
    encode_json,
)
from llmgw.handoff import let_writes_out
from llmgw.prices import price_for
from llmgw.routing import CONTEXT_WINDOW_CODES, RETRYABLE_STATUSES, CooldownBoard
from workers.budget_cap import StreamMeter, cap_max_tokens, completion_allowance
from workers.credentials import DeploymentTable
from workers.providers import Provider
from workers.providers.base import NativeHead, StallGuard, UpstreamError
from workers.relay import ChunkRelay
from workers.settings import WorkerSettings
from workers.usage import Usage, cost_of, estimate_prompt_tokens

log = structlog.get_logger()

USAGE_PUBLISH_TIMEOUT = 5.0  # seconds to wait for JetStream to store a usage event (then retry)
MAX_RETRY_AFTER = 10.0  # an upstream's retry-after is honoured up to this many seconds


def source_of(usage: Usage) -> str:
    return UsageSource.ESTIMATED if usage.estimated else UsageSource.PROVIDER


class Outcome(msgspec.Struct):
    """What happened to a request, gathered while it runs, for its usage event and log line."""

    status: str = UsageStatus.SUCCESS
    http_status: int = 200
    error_code: str | None = None
    usage: Usage | None = None
    usage_source: str = UsageSource.NONE
    ttft: float | None = None
    upstream_model: str = ""
    deployment: Deployment | None = None  # the deployment called last
    tries: int = 1  # upstream calls made


class KeepAlive:
    """Tells JetStream every `interval` seconds that a message is still being worked on, so a long
    upstream call is not redelivered. A timer, not a task per request: starting and cancelling a
    task costs ~15 us of CPU, a timer ~2 us, and most requests end before the first tick."""

    def __init__(self, msg: Msg, interval: float) -> None:
        self._msg = msg
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(interval, self._tick)
        self._touch_task: asyncio.Task | None = None

    def _tick(self) -> None:
        self._timer = self._loop.call_later(self._interval, self._tick)
        self._touch_task = self._loop.create_task(self._touch())

    async def _touch(self) -> None:
        try:
            await self._msg.in_progress()
        except Exception as exc:
            log.warning("in_progress_failed", error=str(exc) or type(exc).__name__)

    def cancel(self) -> None:
        self._timer.cancel()


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
    ) -> None:
        self.deployments = deployments
        self.cooldowns = cooldowns
        # Requests in flight whose client went away, served to their end anyway
        # (LLMGW_ON_CLIENT_DISCONNECT=finish): their usage is the provider's exact count.
        self.client_gone: set[str] = set()
        self.router_settings = cooldowns.settings
        self.nc = nc
        self.publisher = publisher
        self.subjects = subjects
        self.settings = settings
        self.providers = providers

    async def handle(self, msg: Msg) -> None:
        try:
            request = decode_request(msg.data)
        except msgspec.DecodeError as exc:
            log.error("request_undecodable", error=str(exc))
            await msg.term()
            return
        asyncio.current_task().set_name(request.request_id)  # a Cancel finds the task by it
        attempt = msg.metadata.num_delivered or 1
        heartbeat = KeepAlive(msg, max(self.settings.ack_wait / 3.0, 0.2))
        started = time.time()
        outcome = Outcome(deployment=self.deployments.get(request.deployment_id))
        try:
            await self._serve(request, attempt, outcome, started)
            if request.request_id in self.client_gone:
                self.client_gone.discard(request.request_id)
                if outcome.status == UsageStatus.SUCCESS:  # read to the end, but the client did not get it all
                    outcome.status, outcome.http_status, outcome.error_code = UsageStatus.CANCELLED, 499, "client_closed"
            latency_ms = (time.time() - started) * 1000.0
            if outcome.deployment is not None:
                await self._publish_usage(request, attempt, outcome.deployment, outcome, latency_ms)
        finally:
            heartbeat.cancel()
        await msg.ack()
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

    async def _serve(self, request: UpstreamRequest, attempt: int, outcome: Outcome, started: float) -> None:
        relay: ChunkRelay | None = None
        try:
            if request.deadline <= started:
                outcome.status, outcome.http_status = UsageStatus.EXPIRED, 504
                await self._reply_error(
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
            if request.stream or request.operation == Operation.NATIVE:
                relay = ChunkRelay(
                    self.nc,
                    request.reply_to,
                    request.request_id,
                    attempt,
                    self.settings.coalesce_interval,
                    self.settings.coalesce_max,
                )
            index = 0
            while True:
                deployment = outcome.deployment = plan[index]
                if relay is not None:
                    relay.deployment_id = deployment.id
                outcome.tries += 1 if index else 0
                try:
                    await self._call(request, attempt, deployment, outcome, started, relay)
                    self.cooldowns.succeeded(deployment.id)
                    return
                except UpstreamError as exc:
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
        except UpstreamError as exc:
            outcome.status = (
                UsageStatus.BUDGET_STOPPED
                if exc.code == ErrorCode.BUDGET_EXCEEDED
                else UsageStatus.UPSTREAM_ERROR
                if exc.status != 500
                else UsageStatus.ERROR
            )
            outcome.http_status, outcome.error_code = exc.status, exc.code
            await self._reply_error(request, attempt, exc, relay, outcome)
        except asyncio.CancelledError:
            # Only a Cancel from the edge cancels a handler: the client went away.
            asyncio.current_task().uncancel()
            outcome.status, outcome.http_status, outcome.error_code = UsageStatus.CANCELLED, 499, "client_closed"
        except Exception:
            log.exception("request_failed", request_id=request.request_id)
            outcome.status, outcome.http_status, outcome.error_code = UsageStatus.ERROR, 500, ErrorCode.INTERNAL
            await self._reply_error(
                request,
                attempt,
                UpstreamError(500, "internal error in the gateway worker", ErrorType.API, ErrorCode.INTERNAL),
                relay,
                outcome,
            )
        if outcome.usage is None and relay is not None and relay.started and not relay.raw:
            # The stream broke off before the provider reported usage: estimate what was used.
            outcome.usage = Usage(
                prompt_tokens=estimate_prompt_tokens(request.body), completion_tokens=relay.sent + len(relay.buffer)
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
                raise UpstreamError(500, "the request's client key was sealed under another secret", ErrorType.API, ErrorCode.INTERNAL)
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
        if request.operation == Operation.NATIVE:
            await self._call_native(request, attempt, deployment, provider, outcome, started, relay, stall)
            return
        meter, request = self._apply_cost_cap(request, deployment, outcome.upstream_model)
        if request.operation == Operation.CHAT and request.stream:
            assert relay is not None
            async with StallGuard(stall, deployment) as guard:
                async for item in provider.chat_stream(deployment, request, outcome.upstream_model):
                    guard.touch()
                    if type(item) is bytes:
                        if outcome.ttft is None:
                            outcome.ttft = time.time() - started
                        if meter is not None and not meter.take():
                            raise UpstreamError(
                                429,
                                "the budget of this key, user or team is used up: the stream was stopped",
                                "budget_exceeded",
                                ErrorCode.BUDGET_EXCEEDED,
                            )
                        await relay.add(item)
                    else:
                        outcome.usage, outcome.usage_source = item, source_of(item)
            await relay.finish(self._cost(outcome, deployment), deployment.id, outcome.tries, self._tokens(outcome))
            return
        call = provider.chat if request.operation == Operation.CHAT else provider.embeddings
        completion = await call(deployment, request, outcome.upstream_model)
        if completion.usage is not None:
            outcome.usage, outcome.usage_source = completion.usage, source_of(completion.usage)
        else:  # the provider did not count (some embedding APIs): estimate rather than record nothing
            outcome.usage = Usage(prompt_tokens=estimate_prompt_tokens(request.body))
            outcome.usage_source = UsageSource.ESTIMATED
        reply = Completed(
            request_id=request.request_id,
            attempt=attempt,
            body=completion.body,
            cost=self._cost(outcome, deployment),
            deployment_id=deployment.id,
            tries=outcome.tries,
            tokens=self._tokens(outcome),
        )
        await self.nc.publish(request.reply_to, encode_internal(reply))
        await let_writes_out()  # the answer leaves before the usage event is built

    async def _call_native(
        self,
        request: UpstreamRequest,
        attempt: int,
        deployment: Deployment,
        provider: Provider,
        outcome: Outcome,
        started: float,
        relay: ChunkRelay | None,
        stall: float,
    ) -> None:
        """A passthrough call: the provider's answer relayed as it came, metered from its own fields."""
        assert relay is not None
        head: NativeHead | None = None
        parts: list[bytes] = []
        async with StallGuard(stall, deployment) as guard:
            async for item in provider.native(deployment, request, outcome.upstream_model):
                guard.touch()
                if isinstance(item, NativeHead):
                    head = item
                    if head.status >= 400:
                        outcome.status, outcome.http_status = UsageStatus.UPSTREAM_ERROR, head.status
                    if head.stream:
                        await relay.start_raw(head.status, head.headers)
                elif type(item) is bytes:
                    if head is not None and head.stream:
                        if outcome.ttft is None:
                            outcome.ttft = time.time() - started
                        await relay.add(item)
                    else:
                        parts.append(item)
                else:
                    outcome.usage, outcome.usage_source = item, UsageSource.PROVIDER
        if head is None:
            raise UpstreamError(502, "the upstream sent no answer", ErrorType.API, ErrorCode.UPSTREAM_ERROR)
        cost = self._cost(outcome, deployment)
        if head.stream:
            await relay.finish(cost, deployment.id, outcome.tries, self._tokens(outcome))
            return
        reply = Completed(
            request_id=request.request_id,
            attempt=attempt,
            body=b"".join(parts),
            status=head.status,
            headers=head.headers,
            cost=cost,
            deployment_id=deployment.id,
            tries=outcome.tries,
            tokens=self._tokens(outcome),
        )
        await self.nc.publish(request.reply_to, encode_internal(reply))

    @staticmethod
    def _tokens(outcome: Outcome) -> int | None:
        return outcome.usage.prompt_tokens + outcome.usage.completion_tokens if outcome.usage else None

    @staticmethod
    def _cost(outcome: Outcome, deployment: Deployment) -> float:
        return cost_of(outcome.usage or Usage(), deployment, outcome.upstream_model)[0]

    @staticmethod
    def _apply_cost_cap(
        request: UpstreamRequest, deployment: Deployment, upstream_model: str
    ) -> tuple[StreamMeter | None, UpstreamRequest]:
        """Hold a capped request to its cap: a stream is metered (and stopped at the cap), a whole
        answer gets a `max_tokens` it can afford."""
        price = price_for(deployment, upstream_model) if request.cost_cap is not None else None
        if price is None:
            return None, request
        allowance = completion_allowance(price, request.cost_cap, len(request.body))
        if request.stream:
            return StreamMeter(allowance), request
        return None, msgspec.structs.replace(request, body=cap_max_tokens(request.body, max(allowance, 1)))

    async def _reply_error(
        self,
        request: UpstreamRequest,
        attempt: int,
        exc: UpstreamError,
        relay: ChunkRelay | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        failure = Failed(
            request_id=request.request_id,
            attempt=attempt,
            cost=0.0 if relay is None or not relay.started else None,  # a broken stream: metering decides
            deployment_id=outcome.deployment.id if outcome is not None and outcome.deployment is not None else None,
            tries=outcome.tries if outcome is not None else 1,
            status=exc.status,
            message=exc.message,
            type=exc.type,
            code=exc.code,
            param=exc.param,
            retry_after=exc.retry_after,
        )
        if relay is not None and relay.started:
            await relay.fail(failure)
        else:
            await self.nc.publish(request.reply_to, encode_internal(failure))

    async def _publish_usage(
        self, request: UpstreamRequest, attempt: int, deployment: Deployment, outcome: Outcome, latency_ms: float
    ) -> None:
        usage = outcome.usage or Usage()
        cost, known = cost_of(usage, deployment, outcome.upstream_model)
        event = UsageEvent(
            request_id=request.request_id,
            ts=request.received_at,
            key_hash=request.caller.key_hash,
            key_alias=request.caller.key_alias,
            user_id=request.caller.user_id,
            team_id=request.caller.team_id,
            operation=request.operation,
            model_group=request.model_group,
            deployment_id=deployment.id,
            provider=deployment.provider,
            upstream_model=outcome.upstream_model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cost=cost,
            cost_known=known,
            latency_ms=latency_ms,
            ttft_ms=outcome.ttft * 1000.0 if outcome.ttft is not None else None,
            status=outcome.status,
            http_status=outcome.http_status,
            error_code=outcome.error_code,
            usage_source=outcome.usage_source,
            stream=request.stream,
            attempt=attempt,
            worker_id=self.settings.worker_id,
            upstream_attempts=outcome.tries,
            ledgers=request.ledgers,
        )
        subject = self.subjects.usage(deployment.provider, outcome.status)
        payload = encode_json(event)
        delay = 0.1
        while True:
            try:
                await self.publisher.publish(subject, payload, {MSG_ID_HEADER: request.request_id}, USAGE_PUBLISH_TIMEOUT)
                return
            except Exception as exc:
                log.warning("usage_publish_retry", request_id=request.request_id, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
