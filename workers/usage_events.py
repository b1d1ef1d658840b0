"""What a request did, gathered while it runs, and the usage event that records it for metering."""

from __future__ import annotations

import msgspec

from llmgw.bus import AckedPublisher
from llmgw.config import Deployment
from llmgw.contracts import (
    Subjects,
    Units,
    UpstreamRequest,
    UsageEvent,
    UsageSource,
    UsageStatus,
)
from workers import metrics
from workers.settings import WorkerSettings
from workers.usage import Usage, cost_of
from workers.usage_batches import UsageBatcher

NO_UNITS = Units()


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
    response_id: str = ""  # the `id` of the answer sent to the edge

    def saw(self, answer: bytes) -> None:
        """Note the `id` of an answer if it has one: a whole JSON body, a stream's first chunk, or
        the first event of a stream relayed as the provider sent it (`data: {...}`; the Responses
        API's `response.created` has it in its `response`)."""
        if self.response_id:
            return
        if answer[:1] != b"{":
            start = answer.find(b"data:")
            if start < 0:
                return
            end = answer.find(b"\n", start)
            answer = answer[start + 5 : end if end >= 0 else len(answer)].strip()
        try:
            found = _answer_id(answer)
        except msgspec.DecodeError:
            return
        self.response_id = found.id or (found.response.id if found.response is not None else "")

    def took(self, usage: Usage) -> None:
        """The provider (or an adapter's estimate) said what the request used."""
        self.usage, self.usage_source = usage, source_of(usage)

    def tokens(self) -> int | None:
        return self.usage.prompt_tokens + self.usage.completion_tokens if self.usage else None

    def cost(self, deployment: Deployment) -> float:
        return cost_of(self.usage or Usage(), deployment, self.upstream_model)[0]


class _ResponseId(msgspec.Struct):
    id: str = ""


class _AnswerId(msgspec.Struct):
    id: str = ""
    response: _ResponseId | None = None  # a Responses API stream event's response object


_answer_id = msgspec.json.Decoder(_AnswerId).decode


def usage_event(
    request: UpstreamRequest, attempt: int, deployment: Deployment, outcome: Outcome, latency_ms: float, worker_id: str
) -> UsageEvent:
    usage = outcome.usage or Usage()
    units = usage.units or NO_UNITS
    cost, known = cost_of(usage, deployment, outcome.upstream_model)
    return UsageEvent(
        request_id=request.request_id,
        response_id=outcome.response_id,
        client_request_id=request.client_request_id,
        ts=request.received_at,
        key_hash=request.caller.key_hash,
        key_alias=request.caller.key_alias,
        user_id=request.caller.user_id,
        team_id=request.caller.team_id,
        tags=request.caller.tags,
        end_user=request.caller.end_user,
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
        images=units.images,
        audio_seconds=units.audio_seconds,
        characters=units.characters,
        search_units=units.search_units,
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
        worker_id=worker_id,
        upstream_attempts=outcome.tries,
        ledgers=request.ledgers,
    )


class UsageRecorder:
    """Publishes each request's usage event to JetStream (in a batch with those of the requests
    that finish close to it), retrying until it is stored: the request's message is acked only
    after that, so usage is never lost with a worker."""

    def __init__(self, publisher: AckedPublisher, subjects: Subjects, settings: WorkerSettings) -> None:
        self.settings = settings
        self.metrics = metrics.usage_metrics(settings.metrics_team_label)
        self.batcher = UsageBatcher(publisher, subjects.usage_batch)

    async def record(
        self,
        request: UpstreamRequest,
        attempt: int,
        deployment: Deployment,
        outcome: Outcome,
        latency_ms: float,
        traceparent: str | None = None,
    ) -> None:
        event = usage_event(request, attempt, deployment, outcome, latency_ms, self.settings.worker_id)
        self.metrics.observe(event)
        await self.batcher.add(event, traceparent)
