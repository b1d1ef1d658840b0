"""The OTLP/HTTP exporter (llmgw/otlp_export.py) against a receiver that decodes what it is sent
(tests/otlp_receiver.py): batches by size and by time, headers and gzip as configured, a post
retried after a 503 and not after a 400, and an endpoint that cannot be reached or a full queue
costing a count of lost spans, never the caller."""

from __future__ import annotations

import time

import pytest

from llmgw.otlp_export import BatchExporter, OtlpSettings, otlp_settings_from_env
from llmgw.tracing import Sampler, SpanKind, Tracer, lost_spans, start_tracing, stop_tracing
from tests.otlp_receiver import Receiver
from tests.procs import free_port
from tests.waiting import eventually_sync

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def _exporter(settings: OtlpSettings) -> tuple[BatchExporter, Tracer]:
    exporter = BatchExporter(settings, {"service.name": "llmgw-test"})
    return exporter, Tracer(exporter, Sampler())


def _spans(tracer: Tracer, count: int, prefix: str = "s") -> list[str]:
    names = [f"{prefix}{i}" for i in range(count)]
    for name in names:
        tracer.start_span(name, None, SpanKind.SERVER, {"n": name}).end()
    return names


def test_full_batches_go_at_once_and_the_rest_on_the_schedule(receiver):
    exporter, tracer = _exporter(OtlpSettings(endpoint=f"{receiver.url}/v1/traces", schedule_delay_s=0.3, max_batch_size=4))
    try:
        names = _spans(tracer, 10)
        # (the receiver has them before the exporter has read its answer and counted them)
        eventually_sync(lambda: len(receiver.spans) == 10 and exporter.exported_spans == 10, "all ten spans", timeout=10)
        assert sorted(s.name for s in receiver.spans) == sorted(names)
        assert all(s.service == "llmgw-test" and s.attributes == {"n": s.name} for s in receiver.spans)
        assert 3 <= len(receiver.posts) <= 4  # 4 + 4 + 2 (the last two may come in two schedules)
        assert exporter.exported_spans == 10 and exporter.lost_spans() == 0
    finally:
        exporter.shutdown()


def test_headers_and_gzip_as_the_environment_says(receiver):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer%20abc,x-tenant=blue",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    exporter, tracer = _exporter(otlp_settings_from_env(env))
    try:
        _spans(tracer, 3)
        eventually_sync(lambda: len(receiver.spans) == 3, "the three spans", timeout=10)
        post = receiver.posts[0]
        assert (post["authorization"], post["x-tenant"], post["content-encoding"]) == ("Bearer abc", "blue", "gzip")
        assert post["content-type"] == "application/x-protobuf"
    finally:
        exporter.shutdown()


def test_a_503_is_retried_and_a_400_is_not(receiver):
    exporter, tracer = _exporter(OtlpSettings(endpoint=f"{receiver.url}/v1/traces", schedule_delay_s=0.05, timeout_s=5))
    try:
        receiver.answer_next(503)
        _spans(tracer, 2, "retried")
        eventually_sync(lambda: exporter.exported_spans == 2, "the spans, on the second try", timeout=10)
        assert len(receiver.posts) == 2 and len(receiver.spans) == 2
        receiver.answer_next(400)
        _spans(tracer, 3, "refused")
        eventually_sync(lambda: exporter.failed_spans == 3, "the refused batch counted", timeout=10)
        assert len(receiver.posts) == 3 and len(receiver.spans) == 2
    finally:
        exporter.shutdown()


def test_an_unreachable_endpoint_costs_a_counter_not_the_caller():
    settings = OtlpSettings(endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", schedule_delay_s=0.05, timeout_s=0.3)
    exporter, tracer = _exporter(settings)
    started = time.monotonic()
    _spans(tracer, 5)
    made = time.monotonic() - started
    eventually_sync(lambda: exporter.failed_spans == 5, "the five spans counted as lost", timeout=10)
    exporter.shutdown()
    assert exporter.exported_spans == 0 and made < 0.3  # (the spans were made without waiting on the post)


def test_a_full_queue_drops_and_counts():
    settings = OtlpSettings(
        endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", schedule_delay_s=60, max_queue_size=8, max_batch_size=8
    )
    exporter, tracer = _exporter(settings)
    exporter.stopping.set()  # the thread takes nothing: the queue only fills
    exporter.wake.set()
    exporter.thread.join(5)
    _spans(tracer, 11)
    assert (len(exporter.queue), exporter.dropped_spans) == (8, 3)


def test_a_process_tracer_names_its_service_and_sends_what_is_left_when_it_stops(receiver):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging,service.name=ignored",
    }
    tracer = start_tracing("worker", True, env)
    assert tracer is not None
    _spans(tracer, 2)
    assert receiver.spans == []  # (not before the schedule)
    stop_tracing()
    assert len(receiver.spans) == 2 and lost_spans() == 0
    assert receiver.spans[0].resource["service.name"] == "llmgw-worker"
    assert receiver.spans[0].resource["deployment.environment"] == "staging"
