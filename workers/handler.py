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
from llmgw.config import Deployment
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
from workers.credentials import DeploymentTable
from workers.providers import Provider
from workers.providers.base import UpstreamError
from workers.relay import ChunkRelay
from workers.settings import WorkerSettings
from llmgw.prices import price_for
from workers.budget_cap import StreamMeter, cap_max_tokens, completion_allowance
from workers.usage import Usage, cost_of, estimate_prompt_tokens

log = structlog.get_logger()

USAGE_PUBLISH_TIMEOUT = 5.0  # seconds to wait for JetStream to store a usage event (then retry)


class Outcome(msgspec.Struct):
    """What happened to a request, gathered while it runs, for its usage event and log line."""

    status: str = UsageStatus.SUCCESS
    http_status: int = 200
    error_code: str | None = None
    usage: Usage | None = None
    usage_source: str = UsageSource.NONE
    ttft: float | None = None
    upstream_model: str = ""


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
        except Exception as exc:  # noqa: BLE001 - a disconnect; JetStream may redeliver
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
    ) -> None:
        self.deployments = deployments
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
        outcome = Outcome()
        deployment = self.deployments.get(request.deployment_id)
        try:
            await self._serve(request, attempt, deployment, outcome, started)
            latency_ms = (time.time() - started) * 1000.0
            if deployment is not None:
                await self._publish_usage(request, attempt, deployment, outcome, latency_ms)
        finally:
            heartbeat.cancel()
        await msg.ack()
        log.info(
            "request",
            request_id=request.request_id,
            model=request.model_group,
            deployment=request.deployment_id,
            stream=request.stream,
            attempt=attempt,
            status=outcome.http_status,
            outcome=outcome.status,
            latency_ms=round(latency_ms, 2),
            prompt_tokens=outcome.usage.prompt_tokens if outcome.usage else 0,
            completion_tokens=outcome.usage.completion_tokens if outcome.usage else 0,
        )

    async def _serve(
        self, request: UpstreamRequest, attempt: int, deployment: Deployment | None, outcome: Outcome, started: float
    ) -> None:
        relay: ChunkRelay | None = None
        try:
            if request.deadline <= started:
                outcome.status, outcome.http_status = UsageStatus.EXPIRED, 504
                await self._reply_error(request, attempt, UpstreamError(504, "no worker was free before the deadline", ErrorType.TIMEOUT, ErrorCode.TIMEOUT))
                return
            if deployment is None:
                raise UpstreamError(500, f"deployment {request.deployment_id} is not configured on this worker", ErrorType.API, ErrorCode.INTERNAL)
            provider = self.providers[PROVIDERS[deployment.provider].family]
            outcome.upstream_model = deployment.upstream_model_for(request.model_group)
            meter, request = self._apply_cost_cap(request, deployment, outcome.upstream_model)
            if request.operation == Operation.CHAT and request.stream:
                relay = ChunkRelay(
                    self.nc, request.reply_to, request.request_id, attempt,
                    self.settings.coalesce_interval, self.settings.coalesce_max,
                )
                async for item in provider.chat_stream(deployment, request, outcome.upstream_model):
                    if type(item) is bytes:
                        if outcome.ttft is None:
                            outcome.ttft = time.time() - started
                        if meter is not None and not meter.take():
                            raise UpstreamError(
                                429, "the budget of this key, user or team is used up: the stream was stopped",
                                "budget_exceeded", ErrorCode.BUDGET_EXCEEDED,
                            )
                        await relay.add(item)
                    else:
                        outcome.usage, outcome.usage_source = item, UsageSource.PROVIDER
                await relay.finish(self._cost(outcome, deployment))
            else:
                call = provider.chat if request.operation == Operation.CHAT else provider.embeddings
                completion = await call(deployment, request, outcome.upstream_model)
                if completion.usage is not None:
                    outcome.usage, outcome.usage_source = completion.usage, UsageSource.PROVIDER
                reply = Completed(
                    request_id=request.request_id, attempt=attempt, body=completion.body,
                    cost=self._cost(outcome, deployment),
                )
                await self.nc.publish(request.reply_to, encode_internal(reply))
        except UpstreamError as exc:
            outcome.status = (
                UsageStatus.BUDGET_STOPPED if exc.code == ErrorCode.BUDGET_EXCEEDED
                else UsageStatus.UPSTREAM_ERROR if exc.status != 500 else UsageStatus.ERROR
            )
            outcome.http_status, outcome.error_code = exc.status, exc.code
            await self._reply_error(request, attempt, exc, relay)
        except asyncio.CancelledError:
            # Only a Cancel from the edge cancels a handler: the client went away.
            asyncio.current_task().uncancel()
            outcome.status, outcome.http_status, outcome.error_code = UsageStatus.CANCELLED, 499, "client_closed"
        except Exception:
            log.exception("request_failed", request_id=request.request_id)
            outcome.status, outcome.http_status, outcome.error_code = UsageStatus.ERROR, 500, ErrorCode.INTERNAL
            await self._reply_error(request, attempt, UpstreamError(500, "internal error in the gateway worker", ErrorType.API, ErrorCode.INTERNAL), relay)
        if outcome.usage is None and relay is not None and relay.started:
            # The stream broke off before the provider reported usage: estimate what was used.
            outcome.usage = Usage(prompt_tokens=estimate_prompt_tokens(request.body), completion_tokens=relay.sent + len(relay.buffer))
            outcome.usage_source = UsageSource.ESTIMATED

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

    async def _reply_error(self, request: UpstreamRequest, attempt: int, exc: UpstreamError, relay: ChunkRelay | None = None) -> None:
        failure = Failed(
            request_id=request.request_id,
            attempt=attempt,
            cost=0.0 if relay is None or not relay.started else None,  # a broken stream: metering decides
            status=exc.status,
            message=exc.message,
            type=exc.type,
            code=exc.code,
            param=exc.param,
            retry_after=exc.retry_after,
        )
        if relay is not None:
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
            ledgers=request.ledgers,
        )
        subject = self.subjects.usage(deployment.provider, outcome.status)
        payload = encode_json(event)
        delay = 0.1
        while True:
            try:
                await self.publisher.publish(subject, payload, {MSG_ID_HEADER: request.request_id}, USAGE_PUBLISH_TIMEOUT)
                return
            except Exception as exc:  # noqa: BLE001 - NATS unavailable: keep the record, retry
                log.warning("usage_publish_retry", request_id=request.request_id, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
