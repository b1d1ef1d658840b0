"""A worker's part of a batch handed to a provider's own batch API: it answers the edge's
`ProviderBatchCall`s (submit, poll, results) on `Subjects.provider_batch(<provider>)`, one worker
of the queue group each, through the provider's adapter (OpenAI: workers/providers/openai_batches.py).

`results` meters every line before it answers: one usage event per line, with the tokens the
provider reported for it and its cost at the provider's batch price (`llmgw.prices.batch_price_factor`),
its `request_id` derived from the batch and the line (`provider_request_id`), so results read again
after a restart are still one row each; the answer is sent once metering has them stored."""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from llmgw.catalog import PROVIDERS
from llmgw.config import Deployment
from llmgw.contracts import (
    ErrorCode,
    Operation,
    ProviderBatchAnswer,
    ProviderBatchCall,
    ProviderBatchOp,
    ProviderLineResult,
    Subjects,
    UsageEvent,
    UsageSource,
    UsageStatus,
    decode_provider_batch_call,
    encode_provider_batch,
    provider_request_id,
)
from llmgw.prices import batch_price_factor
from workers.credentials import DeploymentTable
from workers.provider_batch_apis import BATCH_APIS, LineOutcome, results_page
from workers.providers.base import Provider
from workers.providers.errors import UpstreamError, scrub
from workers.usage import cost_of
from workers.usage_batches import UsageBatcher

log = structlog.get_logger()

QUEUE = "provider-batches"


class _Answer(msgspec.Struct):
    id: str = ""


_answer_decoder = msgspec.json.Decoder(_Answer)


def _answer_id(body: bytes) -> str:
    try:
        return _answer_decoder.decode(body).id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


class ProviderBatches:
    def __init__(
        self,
        nc: Client,
        subjects: Subjects,
        deployments: DeploymentTable,
        providers: dict[str, Provider],
        batcher: UsageBatcher,
        worker_id: str,
    ) -> None:
        self.nc = nc
        self.subjects = subjects
        self.deployments = deployments
        self.providers = providers
        self.batcher = batcher
        self.worker_id = worker_id
        self.subscriptions: list[Subscription] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def serve(self, provider: str) -> None:
        """Answer `provider`'s hand-off calls from now on."""
        sub = await self.nc.subscribe(self.subjects.provider_batch(provider), queue=QUEUE, cb=self._on_call)
        self.subscriptions.append(sub)

    async def stop(self) -> None:
        for sub in self.subscriptions:
            await sub.unsubscribe()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=10)

    async def _on_call(self, msg: Msg) -> None:
        task = asyncio.create_task(self._answer(msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        try:
            call = decode_provider_batch_call(msg.data)
        except msgspec.DecodeError as exc:
            log.error("provider_batch_call_undecodable", error=str(exc))
            return
        started = time.time()
        try:
            answer = await self._call(call)
        except UpstreamError as exc:
            deployment = self.deployments.get(call.deployment_id)
            message = scrub(exc.message, deployment) if deployment is not None else exc.message
            answer = ProviderBatchAnswer(ok=False, status=exc.status, message=message, error_code=exc.code or "")
        except Exception as exc:
            log.exception("provider_batch_call_failed", batch_id=call.batch_id, op=call.op)
            answer = ProviderBatchAnswer(ok=False, status=500, message=type(exc).__name__, error_code=ErrorCode.INTERNAL)
        log.info(
            "provider_batch_call",
            batch_id=call.batch_id,
            op=call.op,
            deployment=call.deployment_id,
            ok=answer.ok,
            status=answer.status,
            state=answer.state,
            lines=len(answer.results),
            latency_ms=round((time.time() - started) * 1000.0, 2),
        )
        if msg.reply:
            await self.nc.publish(msg.reply, encode_provider_batch(answer))

    async def _call(self, call: ProviderBatchCall) -> ProviderBatchAnswer:
        deployment = self.deployments.get(call.deployment_id) or await self.deployments.wait_for(call.deployment_id)
        if deployment is None:
            return ProviderBatchAnswer(ok=False, status=404, message=f"no deployment {call.deployment_id}")
        family = PROVIDERS[deployment.provider].family
        adapter = self.providers.get(family)
        if adapter is None or family not in BATCH_APIS:
            return ProviderBatchAnswer(ok=False, status=400, message=f"{deployment.provider} has no batch API here")
        api = BATCH_APIS[family]
        if call.op == ProviderBatchOp.SUBMIT:
            provider_id = await api.submit(adapter, deployment, call)
            return ProviderBatchAnswer(ok=True, provider_batch_id=provider_id)
        if call.op == ProviderBatchOp.POLL:
            state = await api.poll(adapter, deployment, call)
            return ProviderBatchAnswer(ok=True, provider_batch_id=call.provider_batch_id, state=state)
        if call.op == ProviderBatchOp.RESULTS:
            page, after = results_page(await api.results(adapter, deployment, call), call.results_from, call.results_max_bytes)
            metered = await self._metered(call, deployment, page)
            return ProviderBatchAnswer(ok=True, provider_batch_id=call.provider_batch_id, results=metered, results_next=after)
        if call.op == ProviderBatchOp.FIND:
            found = await api.find(adapter, deployment, call)
            if found is None:
                return ProviderBatchAnswer(ok=False, status=501, message=f"{deployment.provider}'s batches cannot be found")
            return ProviderBatchAnswer(ok=True, provider_batch_id=found)
        if call.op == ProviderBatchOp.CANCEL:
            await api.cancel(adapter, deployment, call)
            return ProviderBatchAnswer(ok=True, provider_batch_id=call.provider_batch_id)
        return ProviderBatchAnswer(ok=False, status=400, message=f"unknown operation {call.op!r}")

    async def _metered(
        self, call: ProviderBatchCall, deployment: Deployment, lines: list[LineOutcome]
    ) -> list[ProviderLineResult]:
        """Each line's usage event stored, then the lines as the edge writes them."""
        factor = batch_price_factor(deployment.provider)
        out: list[ProviderLineResult] = []
        events: list[UsageEvent] = []
        caller = call.caller
        for line in lines:
            usage = line.usage
            cost, known = cost_of(usage, deployment, call.upstream_model) if usage is not None else (0.0, True)
            cost *= factor
            request_id = provider_request_id(call.batch_id, line.index)
            out.append(
                ProviderLineResult(
                    index=line.index,
                    status=line.status,
                    body=line.body,
                    request_id=request_id,
                    cost=cost,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                )
            )
            if caller is None or not line.ran:
                continue
            events.append(
                UsageEvent(
                    request_id=request_id,
                    response_id=_answer_id(line.body),
                    client_request_id=f"{call.batch_id}-{line.index}",
                    ts=call.received_at,
                    key_hash=caller.key_hash,
                    key_alias=caller.key_alias,
                    user_id=caller.user_id,
                    team_id=caller.team_id,
                    tags=caller.tags,
                    end_user=caller.end_user,
                    operation=Operation.CHAT,
                    model_group=call.model_group,
                    deployment_id=deployment.id,
                    provider=deployment.provider,
                    upstream_model=call.upstream_model,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                    cached_tokens=usage.cached_tokens if usage else 0,
                    cost=cost,
                    cost_known=known,
                    latency_ms=max(time.time() - call.received_at, 0.0) * 1000.0,
                    status=UsageStatus.SUCCESS if line.status < 400 else UsageStatus.UPSTREAM_ERROR,
                    http_status=line.status,
                    error_code=None if line.status < 400 else "upstream_error",
                    usage_source=UsageSource.PROVIDER if usage is not None else UsageSource.NONE,
                    stream=False,
                    worker_id=self.worker_id,
                    ledgers=call.ledgers,
                )
            )
        await asyncio.gather(*(self.batcher.add(event) for event in events))
        return out
