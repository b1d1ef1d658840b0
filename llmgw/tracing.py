"""OpenTelemetry traces of requests, exported over OTLP/HTTP (protobuf) in batches.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
`LLMGW_TRACING` is true, or the config file names `otel` among `litellm_settings.callbacks` (as
LiteLLM's config does); `LLMGW_TRACING=false` or `OTEL_SDK_DISABLED=true` turns it off whatever
else says so. Each process decides once, in its settings (`tracing_wanted`). Off, the tracer is
None and the request path creates no span at all. On, each process (edge, worker, metering)
has its own provider named after it (`service.name` = `llmgw-edge`, ...), and the spans of one
request share its trace: the edge's context goes to the worker and the worker's to metering in the
`traceparent` header of the bus messages (contracts.TRACEPARENT_HEADER).

Spans are queued and sent by the SDK's batch processor on its own thread; an endpoint that cannot
be reached costs the export thread's retries and a counter (`ExportCounter.failed_spans`), never
the request that made the span."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.trace import Span, Tracer

log = structlog.get_logger()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_provider: TracerProvider | None = None
_counter: ExportCounter | None = None


def _callbacks(litellm_settings: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for name in ("callbacks", "success_callback"):
        value = litellm_settings.get(name)
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            found.extend(str(v) for v in value)
    return [v.strip().lower() for v in found]


def tracing_wanted(env: Mapping[str, str], litellm_settings: Mapping[str, Any] | None = None) -> bool:
    """Whether this process traces: the environment first, then the config file's callbacks."""
    if env.get("OTEL_SDK_DISABLED", "").lower() in _TRUE:
        return False
    switch = env.get("LLMGW_TRACING", "").strip().lower()
    if switch in _FALSE:
        return False
    if switch in _TRUE or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return True
    return "otel" in _callbacks(litellm_settings or {})


class ExportCounter:
    """Wraps the OTLP exporter: counts the spans it could not deliver, and says nothing else."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self.exported_spans = 0
        self.failed_spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self.exporter.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result == SpanExportResult.SUCCESS:
            self.exported_spans += len(spans)
        else:
            self.failed_spans += len(spans)
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def start_tracing(service: str, enabled: bool) -> Tracer | None:
    """This process's tracer (None when tracing is off); call once at start-up."""
    global _provider, _counter
    if not enabled:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The exporter logs every failed post; its cost is the counter instead.
    logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)
    logging.getLogger("opentelemetry.sdk.trace.export").setLevel(logging.CRITICAL)
    if _provider is None:
        _counter = ExportCounter(OTLPSpanExporter())
        _provider = TracerProvider(resource=Resource.create({"service.name": f"llmgw-{service}"}))
        _provider.add_span_processor(BatchSpanProcessor(_counter))  # type: ignore[arg-type]  # (a SpanExporter by duck type)
    return _provider.get_tracer("llmgw")


def stop_tracing() -> None:
    """Send what is queued (bounded by the exporter's timeout) and say how many spans were lost."""
    global _provider
    if _provider is None:
        return
    _provider.shutdown()
    _provider = None
    if _counter is not None:
        log.info("traces_exported", spans=_counter.exported_spans, failed=_counter.failed_spans)


def failed_spans() -> int:
    return _counter.failed_spans if _counter is not None else 0


def traceparent(span: Span) -> str:
    """The W3C `traceparent` value naming `span` as the parent of what follows."""
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def parent_context(value: str | None) -> Context | None:
    """The context a valid W3C `traceparent` value names (None: absent or invalid, a new trace)."""
    if not value:
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    ctx = TraceContextTextMapPropagator().extract({"traceparent": value})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def child_context(span: Span) -> Context:
    from opentelemetry import trace

    return trace.set_span_in_context(span)
