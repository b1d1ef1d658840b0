"""A worker's metrics, served on its own port (`LLMGW_WORKER_METRICS_PORT`).

Counted from each request's usage event as it is published, so the tokens and spend here are
the ones its usage row carries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from llmgw.contracts import UsageEvent, UsageStatus
from llmgw.metrics import LATENCY_BUCKETS, Children, status_class
from llmgw.routing import CooldownBoard

UPSTREAM_DURATION = Children(
    Histogram(
        "llmgw_upstream_duration_seconds",
        "Time a worker spent on a request upstream (retries and fallbacks included), by the deployment that ended it.",
        ["deployment"],
        buckets=LATENCY_BUCKETS,
    )
)
UPSTREAM_ERRORS = Children(
    Counter(
        "llmgw_upstream_errors",
        "Requests a deployment ended with an error, by deployment and HTTP status class.",
        ["deployment", "status_class"],
    )
)
IN_FLIGHT = Gauge("llmgw_worker_in_flight_requests", "Requests this worker is serving now.")

ERROR_STATUSES = frozenset({UsageStatus.UPSTREAM_ERROR, UsageStatus.ERROR})


class UsageMetrics:
    """Tokens and spend; by team as well when the operator turns that label on
    (`LLMGW_METRICS_TEAM_LABEL`: one series per team, so bounded by the teams there are)."""

    def __init__(self, by_team: bool) -> None:
        extra = ["team"] if by_team else []
        self.by_team = by_team
        self.tokens = Children(
            Counter(
                "llmgw_tokens",
                "Tokens metered, by direction (prompt, completion, cached, reasoning) and model group.",
                ["direction", "model_group", *extra],
            )
        )
        self.spend = Children(Counter("llmgw_spend_usd", "Spend in US dollars metered, by model group.", ["model_group", *extra]))

    def observe(self, event: UsageEvent) -> None:
        """One request's usage event, as it is published."""
        observe_upstream(event)
        labels = (event.model_group, event.team_id or "") if self.by_team else (event.model_group,)
        for direction, count in (
            ("prompt", event.prompt_tokens),
            ("completion", event.completion_tokens),
            ("cached", event.cached_tokens),
            ("reasoning", event.reasoning_tokens),
        ):
            if count:
                self.tokens.get(direction, *labels).inc(count)
        if event.cost:
            self.spend.get(*labels).inc(event.cost)


_usage_metrics: dict[bool, UsageMetrics] = {}


def usage_metrics(by_team: bool) -> UsageMetrics:
    """The process's usage metrics (one set per process: families are registered once)."""
    found = _usage_metrics.get(by_team)
    if found is None:
        found = _usage_metrics[by_team] = UsageMetrics(by_team)
    return found


def observe_upstream(event: UsageEvent) -> None:
    UPSTREAM_DURATION.get(event.deployment_id).observe(event.latency_ms / 1000.0)
    if event.status in ERROR_STATUSES:
        UPSTREAM_ERRORS.get(event.deployment_id, status_class(event.http_status)).inc()


def watch(in_flight: Callable[[], int]) -> None:
    """Read on each scrape: the requests in flight."""
    IN_FLIGHT.set_function(in_flight)


class Cooldowns(Collector):
    """`llmgw_cooldown_active{deployment}`: 1 for each deployment in cooldown now, as this
    worker's cooldown board has it (read on the scrape, from a copy of the table)."""

    def __init__(self, board: CooldownBoard) -> None:
        self.board = board

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "llmgw_cooldown_active", "1 while a deployment is in cooldown (skipped by routing).", labels=["deployment"]
        )
        now = time.time()
        for deployment, until in list(self.board.until.items()):
            family.add_metric([deployment], 1.0 if until > now else 0.0)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
