"""A request's span in the worker (when tracing is on, see llmgw/tracing.py): a child of the edge's
span named by the request message's `traceparent` header, with a child span for each upstream
call (GenAI semantic convention attributes: gen_ai.provider.name, gen_ai.request.model,
gen_ai.usage.input_tokens, ...); its own `traceparent` goes with the usage event to metering."""

from __future__ import annotations

from llmgw.config import Deployment
from llmgw.contracts import TRACEPARENT_HEADER, UpstreamRequest
from llmgw.tracing import Span, SpanKind, Tracer, parent_context
from workers.usage_events import Outcome


def _usage_attributes(span: Span, outcome: Outcome) -> None:
    if outcome.upstream_model:
        span.set_attribute("gen_ai.response.model", outcome.upstream_model)
    if outcome.usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", outcome.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", outcome.usage.completion_tokens)


class WorkerSpan:
    __slots__ = ("span", "tracer")

    def __init__(self, tracer: Tracer, headers: dict[str, str] | None, request: UpstreamRequest, attempt: int) -> None:
        self.tracer = tracer
        self.span: Span = tracer.start_span(
            f"{request.operation} {request.model_group}",
            parent_context((headers or {}).get(TRACEPARENT_HEADER)),
            SpanKind.CONSUMER,
            attributes={
                "gen_ai.operation.name": request.operation,
                "gen_ai.request.model": request.model_group,
                "llmgw.request_id": request.request_id,
                "llmgw.delivery": attempt,
                "llmgw.stream": request.stream,
            },
        )

    def upstream_call(self, request: UpstreamRequest, deployment: Deployment, tries: int) -> Span:
        """The span of one call to the upstream (ended by `call_ended`)."""
        return self.tracer.start_span(
            f"{request.operation} {deployment.upstream_model}",
            self.span,
            SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": request.operation,
                "gen_ai.provider.name": deployment.provider,
                "gen_ai.request.model": request.model_group,
                "llmgw.deployment_id": deployment.id,
                "llmgw.try": tries,
            },
        )

    def call_ended(self, span: Span, outcome: Outcome, status: int, error: str | None = None) -> None:
        span.set_attribute("http.response.status_code", status)
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_error(error)
        else:
            _usage_attributes(span, outcome)
        span.end()

    def traceparent(self) -> str:
        return self.span.traceparent()

    def end(self, outcome: Outcome) -> None:
        self.span.set_attribute("llmgw.outcome", outcome.status)
        self.span.set_attribute("http.response.status_code", outcome.http_status)
        if outcome.deployment is not None:
            self.span.set_attribute("gen_ai.provider.name", outcome.deployment.provider)
        _usage_attributes(self.span, outcome)
        self.span.end()
