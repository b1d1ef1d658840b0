"""OpenTelemetry traces of requests, exported over OTLP/HTTP (protobuf) in batches.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
`LLMGW_TRACING` is true, or the config file names `otel` among `litellm_settings.callbacks` (as
LiteLLM's config does); `LLMGW_TRACING=false` or `OTEL_SDK_DISABLED=true` turns it off whatever
else says so. Each process decides once, in its settings (`tracing_wanted`). Off, the tracer is
None and the request path creates no span at all. On, each process (edge, worker, metering)
has its own provider named after it (`service.name` = `llmgw-edge`, ...), and the spans of one
request share its trace: the edge's context goes to the worker and the worker's to metering in the
`traceparent` header of the bus messages (contracts.TRACEPARENT_HEADER).

Spans are llmgw's own small records (a few microseconds each, where the OpenTelemetry SDK's span
and its OTLP encoding cost a hundred): ids, times, attributes, status. Sampling follows the SDK's
settings, `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`,
`parentbased_always_on` (the default), `parentbased_always_off`, `parentbased_traceidratio`) and
`OTEL_TRACES_SAMPLER_ARG` (the ratio); a span not sampled still passes its context on (flag 00),
so the other processes drop it too. `OTEL_RESOURCE_ATTRIBUTES` adds to each process's resource.
Finished spans are sent by llmgw/otlp_export.py on a thread of its own; an endpoint that cannot be
reached costs that thread's retries and a counter of lost spans, never the request that made
them."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from enum import IntEnum
from typing import Any
from urllib.parse import unquote

import msgspec
import structlog

from llmgw.otlp_export import BatchExporter, otlp_settings_from_env
from llmgw.otlp_wire import AttributeValue

log = structlog.get_logger()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_HEX = frozenset("0123456789abcdef")
_LOW64 = (1 << 64) - 1
_exporter: BatchExporter | None = None


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


class SpanKind(IntEnum):
    """OTLP's Span.SpanKind."""

    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class TraceContext:
    """A parent named by a W3C `traceparent` (another process's span, or a client's)."""

    __slots__ = ("sampled", "span_id", "trace_id")
    remote = True

    def __init__(self, trace_id: int, span_id: int, sampled: bool) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.sampled = sampled


class Span:
    """One span: attributes and status are kept only when it is sampled; `end` queues it for export."""

    __slots__ = (
        "attributes",
        "end_ns",
        "error",
        "exporter",
        "kind",
        "name",
        "parent_id",
        "remote_parent",
        "sampled",
        "span_id",
        "start_ns",
        "trace_id",
    )
    remote = False

    def __init__(
        self,
        exporter: BatchExporter | None,
        name: str,
        kind: SpanKind,
        trace_id: int,
        parent: TraceContext | Span | None,
        sampled: bool,
        attributes: dict[str, AttributeValue] | None,
        start_ns: int | None,
    ) -> None:
        self.exporter = exporter
        self.name = name
        self.kind = kind
        self.trace_id = trace_id
        self.span_id = random.getrandbits(64) or 1
        self.parent_id = parent.span_id if parent is not None else 0
        self.remote_parent = parent is not None and parent.remote
        self.sampled = sampled
        self.attributes: dict[str, AttributeValue] = attributes if sampled and attributes is not None else {}
        self.start_ns = start_ns if start_ns is not None else time.time_ns()
        self.end_ns = 0
        self.error: str | None = None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self.sampled:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self.sampled:
            self.attributes.update(attributes)

    def set_error(self, message: str) -> None:
        """Status ERROR with `message`."""
        self.error = message

    def end(self, end_ns: int | None = None) -> None:
        if self.end_ns:
            return
        self.end_ns = end_ns if end_ns is not None else time.time_ns()
        if self.sampled and self.exporter is not None:
            self.exporter.add(self)

    def traceparent(self) -> str:
        """The W3C `traceparent` value naming this span as the parent of what follows."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"


class Sampler(msgspec.Struct, frozen=True):
    """OTEL_TRACES_SAMPLER's samplers: a root decision (all, none, a ratio of trace ids), and
    whether a parent's decision is followed instead."""

    ratio: float = 1.0
    parent_based: bool = True

    def sampled(self, trace_id: int, parent: TraceContext | Span | None) -> bool:
        if parent is not None and self.parent_based:
            return parent.sampled
        if self.ratio >= 1.0:
            return True
        return (trace_id & _LOW64) < round(self.ratio * (_LOW64 + 1))


def sampler_from_env(env: Mapping[str, str]) -> Sampler:
    name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    parent_based = name.startswith("parentbased_")
    root = name.removeprefix("parentbased_")
    if root == "always_off":
        return Sampler(ratio=0.0, parent_based=parent_based)
    if root == "traceidratio":
        try:
            ratio = float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
        except ValueError:
            ratio = 1.0
        return Sampler(ratio=min(max(ratio, 0.0), 1.0), parent_based=parent_based)
    if root != "always_on":
        log.warning("unknown_traces_sampler", sampler=name, using="parentbased_always_on")
        return Sampler()
    return Sampler(parent_based=parent_based)


class Tracer:
    __slots__ = ("exporter", "sampler")

    def __init__(self, exporter: BatchExporter | None, sampler: Sampler) -> None:
        self.exporter = exporter
        self.sampler = sampler

    def start_span(
        self,
        name: str,
        parent: TraceContext | Span | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, AttributeValue] | None = None,
        start_ns: int | None = None,
    ) -> Span:
        """A span, the child of `parent` (a new trace when None); `attributes` is kept, not copied."""
        trace_id = parent.trace_id if parent is not None else (random.getrandbits(128) or 1)
        sampled = self.sampler.sampled(trace_id, parent)
        return Span(self.exporter, name, kind, trace_id, parent, sampled, attributes, start_ns)


def _resource(service: str, env: Mapping[str, str]) -> dict[str, AttributeValue]:
    resource: dict[str, AttributeValue] = {}
    for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            resource[unquote(name.strip())] = unquote(value.strip())
    resource.update({"service.name": f"llmgw-{service}", "telemetry.sdk.name": "llmgw", "telemetry.sdk.language": "python"})
    return resource


def start_tracing(service: str, enabled: bool, env: Mapping[str, str] | None = None) -> Tracer | None:
    """This process's tracer (None when tracing is off); call once at start-up."""
    global _exporter
    if not enabled:
        return None
    env = os.environ if env is None else env
    if _exporter is None:
        _exporter = BatchExporter(otlp_settings_from_env(env), _resource(service, env))
    return Tracer(_exporter, sampler_from_env(env))


def stop_tracing() -> None:
    """Send what is queued (bounded by the exporter's timeout) and say how many spans were lost."""
    global _exporter
    if _exporter is None:
        return
    exporter, _exporter = _exporter, None
    exporter.shutdown()
    log.info("traces_exported", spans=exporter.exported_spans, failed=exporter.lost_spans())


def lost_spans() -> int:
    return _exporter.lost_spans() if _exporter is not None else 0


def parent_context(value: str | None) -> TraceContext | None:
    """The parent a valid W3C `traceparent` value names (None: absent or invalid, a new trace)."""
    if not value or len(value) < 55:
        return None
    value = value.strip().lower()
    parts = value.split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff" or (parts[0] == "00" and len(parts) != 4):
        return None
    version, trace_hex, span_hex, flags_hex = parts[:4]
    if len(trace_hex) != 32 or len(span_hex) != 16 or len(flags_hex) != 2:
        return None
    if not _HEX.issuperset(version + trace_hex + span_hex + flags_hex):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return TraceContext(trace_id, span_id, bool(int(flags_hex, 16) & 1))
