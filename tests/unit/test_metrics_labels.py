"""The bounded labels of the metrics: refusal reasons, status classes, port settings, and
children made once per label set."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.metrics import refusal_reason
from llmgw.config import ConfigError
from llmgw.contracts import ErrorCode
from llmgw.metrics import Children, metrics_port_from_env, status_class


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (401, ErrorCode.INVALID_API_KEY, "auth"),
        (401, None, "auth"),
        (400, ErrorCode.BUDGET_EXCEEDED, "budget"),
        (429, ErrorCode.BUDGET_EXCEEDED, "budget"),
        (429, ErrorCode.RATE_LIMITED, "rate_limit"),
        (403, ErrorCode.PERMISSION_DENIED, "model_access"),
        (404, ErrorCode.MODEL_NOT_FOUND, "model_access"),
        (400, ErrorCode.INVALID_REQUEST, "bad_input"),
        (413, ErrorCode.PAYLOAD_TOO_LARGE, "bad_input"),
        (503, ErrorCode.UNAVAILABLE, None),
        (500, ErrorCode.INTERNAL, None),
    ],
)
def test_refusal_reasons(status: int, code: str | None, reason: str | None) -> None:
    assert refusal_reason(status, code) == reason


def test_status_classes() -> None:
    assert [status_class(s) for s in (200, 201, 404, 429, 500, 503)] == ["2xx", "2xx", "4xx", "4xx", "5xx", "5xx"]


def test_children_are_made_once() -> None:
    family = Counter("llmgw_test_things", "things", ["kind"], registry=CollectorRegistry())
    children = Children(family)
    first = children.get("a")
    assert children.get("a") is first and children.get("b") is not first
    first.inc(2)
    assert family.labels("a")._value.get() == 2


def test_metrics_port_setting() -> None:
    assert metrics_port_from_env({}, "LLMGW_WORKER_METRICS_PORT") is None
    assert metrics_port_from_env({"LLMGW_WORKER_METRICS_PORT": " "}, "LLMGW_WORKER_METRICS_PORT") is None
    assert metrics_port_from_env({"LLMGW_WORKER_METRICS_PORT": "0"}, "LLMGW_WORKER_METRICS_PORT") == 0
    assert metrics_port_from_env({"LLMGW_WORKER_METRICS_PORT": "9101"}, "LLMGW_WORKER_METRICS_PORT") == 9101
    for bad in ("x", "-1", "70000"):
        with pytest.raises(ConfigError, match="LLMGW_WORKER_METRICS_PORT"):
            metrics_port_from_env({"LLMGW_WORKER_METRICS_PORT": bad}, "LLMGW_WORKER_METRICS_PORT")
