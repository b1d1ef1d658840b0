"""Tracing switched by the environment and the config, W3C trace context parsed and passed on,
the OTEL_TRACES_SAMPLER samplers, the exporter's OTEL_* settings, and spans in OTLP's wire format
as opentelemetry-proto's own classes read them."""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.settings import edge_settings_from_env
from llmgw.otlp_export import OtlpSettings, otlp_settings_from_env
from llmgw.otlp_wire import encode_request, encode_resource, encode_scope
from llmgw.tracing import Sampler, Span, SpanKind, Tracer, parent_context, sampler_from_env, start_tracing, tracing_wanted
from metering.settings import metering_settings_from_env
from tests.otlp_receiver import received_spans
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


class Kept:
    """Stands in for the exporter's queue: what was sampled and ended."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def add(self, span: Span) -> None:
        self.spans.append(span)


def _tracer(sampler: Sampler | None = None) -> tuple[Tracer, Kept]:
    kept = Kept()
    return Tracer(kept, sampler or Sampler()), kept  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-abc-def-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    ],
)
def test_an_absent_or_invalid_traceparent_starts_a_new_trace(value):
    assert parent_context(value) is None


def test_a_later_versions_traceparent_is_read_by_its_first_four_fields():
    parent = parent_context("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next")
    assert parent is not None and parent.span_id == 0x00F067AA0BA902B7


@pytest.mark.parametrize("flags", ["01", "00", "03"])
def test_a_traceparent_is_continued_by_a_child_of_the_same_trace(flags):
    tracer, kept = _tracer()
    parent = parent_context(f"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}")
    assert parent is not None
    span = tracer.start_span("request", parent, SpanKind.SERVER)
    sampled = flags != "00"
    assert span.traceparent() == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{span.span_id:016x}-{'01' if sampled else '00'}"
    assert span.span_id not in (0, 0x00F067AA0BA902B7)
    assert parent_context(span.traceparent()).span_id == span.span_id  # type: ignore[union-attr]
    span.end()
    assert kept.spans == ([span] if sampled else [])


def test_spans_read_back_from_the_wire_as_they_were_made():
    tracer, kept = _tracer()
    root = tracer.start_span("POST /v1/chat/completions", None, SpanKind.SERVER, {"url.path": "/v1/chat/completions"})
    root.set_attributes({"llmgw.stream": True, "http.response.status_code": 502, "ratio": 0.25, "big": 2**40, "neg": -3})
    root.set_attribute("gen_ai.request.model", "gpt-4 ünï")
    root.set_attributes({"long": "x" * 125 + "é", "longer": "y" * 300})  # (lengths past one byte)
    root.set_error("upstream_error")
    child = tracer.start_span("auth", root, start_ns=root.start_ns + 5)
    child.end(root.start_ns + 900)
    remote = tracer.start_span("INSERT usage", parent_context(root.traceparent()), SpanKind.CONSUMER)
    remote.end()
    root.end()
    root.end()  # (a second end changes nothing)
    assert kept.spans == [child, remote, root]

    resource = encode_resource({"service.name": "llmgw-edge", "telemetry.sdk.language": "python"})
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_request(resource, encode_scope("llmgw", "1"), kept.spans))
    got = {s.name: s for s in received_spans(request)}
    assert set(got) == {"POST /v1/chat/completions", "auth", "INSERT usage"}
    first = got["POST /v1/chat/completions"]
    assert first.resource == {"service.name": "llmgw-edge", "telemetry.sdk.language": "python"}
    assert first.scope == "llmgw"
    assert (first.trace_id, first.span_id, first.parent_span_id) == (f"{root.trace_id:032x}", f"{root.span_id:016x}", "")
    assert (first.kind, first.start_ns, first.end_ns) == (2, root.start_ns, root.end_ns)
    assert first.attributes == {
        "url.path": "/v1/chat/completions",
        "llmgw.stream": True,
        "http.response.status_code": 502,
        "ratio": 0.25,
        "big": 2**40,
        "neg": -3,
        "gen_ai.request.model": "gpt-4 ünï",
        "long": "x" * 125 + "é",
        "longer": "y" * 300,
    }
    assert (first.status_code, first.status_message) == (2, "upstream_error")  # STATUS_CODE_ERROR
    assert first.flags == 0x101  # sampled, parent not remote
    auth = got["auth"]
    assert (auth.parent_span_id, auth.kind, auth.start_ns, auth.end_ns) == (
        first.span_id,
        1,
        root.start_ns + 5,
        root.start_ns + 900,
    )
    assert (auth.status_code, auth.attributes) == (0, {})
    insert = got["INSERT usage"]
    assert (insert.trace_id, insert.parent_span_id, insert.kind, insert.flags) == (first.trace_id, first.span_id, 5, 0x301)


def _decoded_attributes(spans: list[Span]) -> list[dict]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_request(encode_resource({}), encode_scope("llmgw", "1"), spans))
    by_id = {s.span_id: s.attributes for s in received_spans(request)}
    return [by_id[f"{span.span_id:016x}"] for span in spans]


def test_attributes_kept_encoded_read_back_as_each_span_set_them():
    tracer, kept = _tracer()
    values: list[dict] = [
        {"flag": True, "count": 1, "model": "gpt-4o"},
        {"flag": 1, "count": True, "model": "gpt-4o"},  # (True == 1: never each other's bytes)
        {"flag": False, "count": 0, "model": "1"},
        {"flag": 0, "count": 1, "model": "gpt-4o"},
    ]
    for attributes in values:
        tracer.start_span("request", None, SpanKind.SERVER, dict(attributes)).end()
    assert _decoded_attributes(kept.spans) == values
    assert [type(v) for d in _decoded_attributes(kept.spans) for v in d.values()] == [type(v) for d in values for v in d.values()]


def test_request_ids_that_never_repeat_do_not_grow_what_is_kept():
    from llmgw import otlp_wire

    tracer, kept = _tracer()
    for i in range(otlp_wire._KEPT_MAX + 50):
        tracer.start_span(f"request {i % 3}", None, SpanKind.SERVER, {"llmgw.request_id": f"req-{i}", "n": i}).end()
    everything = _decoded_attributes(kept.spans)  # (every span encoded: past the size kept)
    assert everything == [{"llmgw.request_id": f"req-{i}", "n": i} for i in range(len(kept.spans))]
    assert all(len(found) <= otlp_wire._KEPT_MAX for found in otlp_wire._kept.values())
    assert len(otlp_wire._names) <= otlp_wire._KEPT_MAX
    last = kept.spans[-60:]
    assert _decoded_attributes(last) == [
        {"llmgw.request_id": f"req-{i}", "n": i} for i in range(len(kept.spans) - 60, len(kept.spans))
    ]


def test_attributes_of_a_span_not_sampled_are_not_kept():
    tracer, kept = _tracer(Sampler(ratio=0.0))
    span = tracer.start_span("request", None, SpanKind.SERVER, {"a": 1})
    span.set_attribute("b", 2)
    span.set_attributes({"c": 3})
    span.end()
    assert (span.attributes, kept.spans, span.traceparent()[-2:]) == ({}, [], "00")


@pytest.mark.parametrize(
    ("env", "sampler"),
    [
        ({}, Sampler()),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, Sampler(parent_based=False)),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, Sampler(ratio=0.0, parent_based=False)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, Sampler(ratio=0.0)),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.05"}, Sampler(0.05, parent_based=False)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, Sampler(0.25)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "lots"}, Sampler(1.0)),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "7"}, Sampler(1.0, parent_based=False)),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, Sampler()),
    ],
)
def test_the_sampler_is_the_one_the_environment_names(env, sampler):
    assert sampler_from_env(env) == sampler


def test_a_ratio_samples_that_share_of_new_traces_and_parents_decide_for_their_children():
    tracer, _ = _tracer(Sampler(ratio=0.25))
    rng = random.Random(7)
    roots = [tracer.start_span("r") for _ in range(4000)]
    share = sum(r.sampled for r in roots) / len(roots)
    assert 0.22 < share < 0.28, share
    for root in roots[:200]:  # a trace is sampled whole or not at all
        assert tracer.start_span("c", root).sampled is root.sampled
    trace_id = rng.getrandbits(128)
    low = trace_id & ((1 << 64) - 1)
    decision = low < round(0.25 * 2**64)
    assert Sampler(0.25).sampled(trace_id, None) is decision  # the trace id's low 64 bits, as the SDKs
    sampled_parent = parent_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    unsampled_parent = parent_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    assert Sampler(0.0).sampled(1, sampled_parent) is True
    assert Sampler(1.0).sampled(1, unsampled_parent) is False
    assert Sampler(0.0, parent_based=False).sampled(1, sampled_parent) is False


@pytest.mark.parametrize(
    ("env", "settings"),
    [
        ({}, OtlpSettings()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, OtlpSettings(endpoint="http://collector:4318/v1/traces")),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/custom"},
            OtlpSettings(endpoint="https://b/custom"),
        ),
        (
            {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%20x,x-tenant = blue ,broken", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500"},
            OtlpSettings(headers={"api-key": "s x", "x-tenant": "blue"}, timeout_s=2.5),
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_HEADERS": "a=1",
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=2",
                "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            },
            OtlpSettings(headers={"b": "2"}, gzip=True),
        ),
        (
            {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BSP_MAX_QUEUE_SIZE": "64", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "128"},
            OtlpSettings(schedule_delay_s=0.1, max_queue_size=128, max_batch_size=128),
        ),
        ({"OTEL_BSP_SCHEDULE_DELAY": "soon", "OTEL_EXPORTER_OTLP_TIMEOUT": "-1"}, OtlpSettings()),
    ],
)
def test_the_exporter_takes_the_otel_settings(env, settings):
    assert otlp_settings_from_env(env) == settings
