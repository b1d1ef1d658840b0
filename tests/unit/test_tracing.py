"""Tracing switched by the environment, W3C trace context parsed, and an OTLP endpoint that
cannot be reached costing a counter (the real OTLP/HTTP exporter against a closed port)."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import get_current_span

from llmgw.tracing import ExportCounter, parent_context, start_tracing, traceparent, tracing_enabled
from tests.procs import free_port


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"LLMGW_TRACING": "true"}, True),
        ({"LLMGW_TRACING": "false"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_off_unless_an_endpoint_or_the_setting_turns_it_on(monkeypatch, env, on):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "LLMGW_TRACING", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing_enabled() is on
    if not on:
        assert start_tracing("edge") is None


@pytest.mark.parametrize(
    "value", [None, "", "garbage", "00-00000000000000000000000000000000-0000000000000000-01", "00-abc-def-01"]
)
def test_an_absent_or_invalid_traceparent_starts_a_new_trace(value):
    assert parent_context(value) is None


def test_a_traceparent_names_its_span_and_round_trips():
    value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ctx = parent_context(value)
    assert ctx is not None
    assert traceparent(get_current_span(ctx)) == value


def test_an_unreachable_endpoint_costs_a_counter():
    counter = ExportCounter(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", timeout=1))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(counter))  # type: ignore[arg-type]
    provider.get_tracer("test").start_span("request").end()  # (the export fails inside, raising nothing)
    assert (counter.exported_spans, counter.failed_spans) == (0, 1)
    provider.shutdown()
