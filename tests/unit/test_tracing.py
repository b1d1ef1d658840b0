"""Tracing switched by the environment, W3C trace context parsed, and an OTLP endpoint that
cannot be reached costing a counter (the real OTLP/HTTP exporter against a closed port)."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import get_current_span

from gateway.settings import edge_settings_from_env
from llmgw.tracing import ExportCounter, parent_context, start_tracing, traceparent, tracing_wanted
from metering.settings import metering_settings_from_env
from tests.procs import free_port
from workers.settings import worker_settings_from_env

OTEL = {"callbacks": ["otel"]}


@pytest.mark.parametrize(
    ("env", "litellm_settings", "on"),
    [
        ({}, {}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, {}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, {}, True),
        ({"LLMGW_TRACING": "true"}, {}, True),
        ({"LLMGW_TRACING": "false"}, {}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, {}, False),
        ({}, OTEL, True),
        ({}, {"callbacks": "otel"}, True),
        ({}, {"success_callback": ["langfuse", "otel"]}, True),
        ({}, {"callbacks": ["langfuse"]}, False),
        ({"LLMGW_TRACING": "false"}, OTEL, False),
        ({"OTEL_SDK_DISABLED": "true"}, OTEL, False),
    ],
)
def test_tracing_is_off_unless_an_endpoint_the_setting_or_the_config_turns_it_on(env, litellm_settings, on):
    assert tracing_wanted(env, litellm_settings) is on
    if not on:
        assert start_tracing("edge", tracing_wanted(env, litellm_settings)) is None


def test_the_config_files_callbacks_reach_each_process_settings(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("litellm_settings:\n  callbacks: [otel]\n")
    env = {"LLMGW_CONFIG": str(config), "LLMGW_MASTER_KEY": "sk-master-tracing"}
    assert edge_settings_from_env(env).tracing is True
    assert worker_settings_from_env(env).tracing is True
    assert metering_settings_from_env(env).tracing is True
    off = {**env, "LLMGW_TRACING": "off"}
    assert (edge_settings_from_env(off).tracing, worker_settings_from_env(off).tracing) == (False, False)
    assert metering_settings_from_env(off).tracing is False
    assert metering_settings_from_env({}).tracing is False


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
