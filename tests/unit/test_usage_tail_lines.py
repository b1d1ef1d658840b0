"""`llmgw usage tail`'s lines: one per event, a worker's batch read event by event, filtered by
provider and status."""

from __future__ import annotations

import json

import pytest

from llmgw.contracts import Subjects, UsageBatch, UsageEvent, encode_json
from llmgw_cli.usage import event_lines

pytestmark = pytest.mark.unit

SUBJECTS = Subjects("t")


def usage(request_id: str, provider: str = "openai", status: str = "success") -> UsageEvent:
    return UsageEvent(
        request_id=request_id, ts=1.0, key_hash="k", operation="chat", model_group="g", deployment_id="d",
        provider=provider, upstream_model="m", latency_ms=1.0, status=status, http_status=200,
        usage_source="provider", stream=False, cost=2.5e-7,
    )  # fmt: skip


def ids(lines: list[str]) -> list[str]:
    return [json.loads(line)["request_id"] for line in lines]


def test_a_batch_prints_each_of_its_events_that_match() -> None:
    batch = encode_json(UsageBatch(events=[usage("a"), usage("b", "anthropic"), usage("c", status="upstream_error")]))
    assert ids(event_lines(SUBJECTS, SUBJECTS.usage_batch, batch, "*", "*")) == ["a", "b", "c"]
    assert ids(event_lines(SUBJECTS, SUBJECTS.usage_batch, batch, "openai", "*")) == ["a", "c"]
    assert ids(event_lines(SUBJECTS, SUBJECTS.usage_batch, batch, "*", "upstream_error")) == ["c"]
    assert '"cost":0.00000025' in event_lines(SUBJECTS, SUBJECTS.usage_batch, batch, "*", "*")[0]


def test_a_single_event_is_filtered_by_its_subject() -> None:
    refused = encode_json(usage("r", status="refused"))
    subject = SUBJECTS.usage("openai", "refused")
    assert ids(event_lines(SUBJECTS, subject, refused, "*", "*")) == ["r"]
    assert ids(event_lines(SUBJECTS, subject, refused, "openai", "refused")) == ["r"]
    assert event_lines(SUBJECTS, subject, refused, "anthropic", "*") == []
    assert event_lines(SUBJECTS, subject, refused, "*", "success") == []
