"""The router's pure parts: settings parsing, strategies, cooldown ordering, the worker's plan."""

from __future__ import annotations

import time
from collections import Counter
from types import SimpleNamespace
from typing import ClassVar

import pytest

from gateway.errors import GatewayError
from gateway.router import ModelRouter
from llmgw.config import ConfigError, Deployment, GatewayConfig
from llmgw.contracts import Caller, Subjects, UpstreamRequest
from llmgw.routing import CooldownBoard, RouterSettings, router_settings
from workers.handler import RequestHandler

pytestmark = pytest.mark.unit


def dep(dep_id: str, group: str = "g", weight: float = 1.0) -> Deployment:
    return Deployment(id=dep_id, model_name=group, provider="openai", upstream_model="m", api_base="http://x/v1", weight=weight)


def test_router_settings_read_litellm_shapes() -> None:
    config = GatewayConfig(
        router_settings={"routing_strategy": "least-busy", "cooldown_time": 7, "fallbacks": [{"a": ["b", "c"]}]},
        litellm_settings={"num_retries": 2, "context_window_fallbacks": [{"a": "big"}]},
    )
    settings = router_settings(config)
    assert settings.routing_strategy == "least-busy" and settings.num_retries == 2 and settings.cooldown_time == 7.0
    assert settings.fallbacks == {"a": ("b", "c")} and settings.context_window_fallbacks == {"a": ("big",)}
    with pytest.raises(ConfigError, match="routing_strategy"):
        router_settings(GatewayConfig(router_settings={"routing_strategy": "telepathy"}))
    with pytest.raises(ConfigError, match="fallbacks"):
        router_settings(GatewayConfig(router_settings={"fallbacks": ["gpt-4"]}))


def test_simple_shuffle_follows_weights() -> None:
    router = ModelRouter((dep("heavy", weight=9.0), dep("light", weight=1.0)))
    firsts = Counter(router.plan("g").deployments[0].id for _ in range(4000))
    assert 0.85 < firsts["heavy"] / 4000 < 0.95


def test_least_busy_picks_the_deployment_with_fewest_in_flight() -> None:
    router = ModelRouter((dep("a"), dep("b"), dep("c")), RouterSettings(routing_strategy="least-busy"))
    router.started("a")
    router.started("a")
    router.started("c")
    assert router.plan("g").deployments[0].id == "b"
    assert [d.id for d in router.plan("g").deployments][-1] == "a"
    router.finished("a", "a", 0.1)
    router.finished("a", "a", 0.1)
    assert router.in_flight == {"c": 1}


def test_latency_based_prefers_the_fastest_recent_answers() -> None:
    router = ModelRouter((dep("slow"), dep("fast")), RouterSettings(routing_strategy="latency-based-routing"))
    for _ in range(3):
        router.started("slow")
        router.finished("slow", "slow", 2.0)
        router.started("fast")
        router.finished("fast", "fast", 0.2)
    assert [router.plan("g").deployments[0].id for _ in range(20)] == ["fast"] * 20


def test_cooled_down_deployments_go_last_and_fallback_groups_follow() -> None:
    board = CooldownBoard(Subjects("t"), RouterSettings())
    board.until["a"] = time.time() + 60
    settings = RouterSettings(fallbacks={"g": ("h",)})
    router = ModelRouter((dep("a"), dep("b"), dep("h1", "h")), settings, board)
    plan = router.plan("g")
    assert [d.id for d in plan.deployments] == ["b", "a"] and plan.fallbacks == ["h1"]
    with pytest.raises(GatewayError) as err:
        router.plan("nope")
    assert err.value.status == 404


async def test_a_worker_counts_failures_before_a_cooldown() -> None:
    board = CooldownBoard(Subjects("t"), RouterSettings(allowed_fails=2, cooldown_time=30))

    class Bus:  # the broadcast goes nowhere in a unit test; what was sent is kept
        sent: ClassVar[list[bytes]] = []

        async def publish(self, subject: str, data: bytes) -> None:
            self.sent.append(data)

    board.nc = Bus()
    await board.failed("a", "503")
    await board.failed("a", "503")
    assert not board.cooling("a")
    await board.failed("a", "503")
    assert board.cooling("a") and len(Bus.sent) == 1


def test_the_worker_plan_retries_each_deployment_then_moves_on_and_skips_cooled_ones() -> None:
    class Table:
        table: ClassVar[dict[str, Deployment]] = {d.id: d for d in (dep("a"), dep("b"), dep("c"))}

        def get(self, dep_id: str):
            return self.table.get(dep_id)

    board = CooldownBoard(Subjects("t"), RouterSettings())
    handler = RequestHandler(
        None,
        None,
        Subjects("t"),
        SimpleNamespace(metrics_team_label=False, tracing=False),
        {"openai": object()},
        Table(),
        board,
        None,
    )  # type: ignore[arg-type]
    request = UpstreamRequest(
        request_id="r",
        reply_to="x",
        operation="chat",
        model_group="g",
        deployment_id="a",
        body=b"{}",
        stream=False,
        include_usage=False,
        deadline=time.time() + 60,
        received_at=time.time(),
        caller=Caller(key_hash="k"),
        fallbacks=["b", "c", "missing"],
        num_retries=1,
    )
    assert [d.id for d in handler._plan(request, ["a", "b", "c", "missing"])] == ["a", "a", "b", "b", "c", "c"]
    board.until["b"] = time.time() + 60
    assert [d.id for d in handler._plan(request, ["a", "b", "c"])] == ["a", "a", "c", "c"]
    board.until.update(a=time.time() + 60, c=time.time() + 60)
    assert [d.id for d in handler._plan(request, ["a", "b", "c"])] == ["a", "a"]  # all cooled: the first anyway
