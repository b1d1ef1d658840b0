"""Which deployment serves a requested model name, and what to try when it fails.

A model group is every deployment with the same `model_name`. The routing strategy orders the
group: `simple-shuffle` (random, by `weight`), `least-busy` (fewest requests this edge has in
flight there), `latency-based-routing` (lowest recent latency seen by this edge, untried ones
first). Deployments in cooldown go last. The plan a worker walks is that order, followed by the
members of the group's fallback groups.
"""

from __future__ import annotations

import random

import msgspec

from gateway.errors import GatewayError
from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType
from llmgw.routing import CooldownBoard, RouterSettings

LATENCY_WEIGHT = 0.3  # weight of the newest sample in the latency average


class Plan(msgspec.Struct, frozen=True):
    deployments: list[Deployment]  # the group in the strategy's order: the first is called first
    fallbacks: list[str]  # deployment ids after the group's own (fallback groups)
    context_fallbacks: list[str]  # deployment ids for a prompt too long for the group


def _not_found(model: str) -> GatewayError:
    return GatewayError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        ErrorType.NOT_FOUND,
        ErrorCode.MODEL_NOT_FOUND,
        "model",
    )


class ModelRouter:
    def __init__(
        self, deployments: tuple[Deployment, ...], settings: RouterSettings | None = None, board: CooldownBoard | None = None
    ) -> None:
        self.settings = settings or RouterSettings()
        self.board = board
        self.groups: dict[str, list[Deployment]] = {}
        self.wildcards: list[Deployment] = []
        self.by_upstream_model: dict[str, list[str]] = {}
        self.by_id: dict[str, Deployment] = {}
        self.replace(deployments)
        self.in_flight: dict[str, int] = {}
        self.latency: dict[str, float] = {}

    def replace(self, deployments: tuple[Deployment, ...]) -> None:
        """Route to these deployments from now on (models added or removed at run time); each
        table is built aside and swapped in whole, and what was learnt of latency stays."""
        groups: dict[str, list[Deployment]] = {}
        wildcards: list[Deployment] = []
        for d in deployments:
            if d.is_wildcard:
                wildcards.append(d)
            else:
                groups.setdefault(d.model_name, []).append(d)
        # Group names by the upstream model their deployments call (native routes name that).
        by_upstream_model: dict[str, list[str]] = {}
        for name, group in groups.items():
            for upstream in dict.fromkeys(d.upstream_model for d in group):
                by_upstream_model.setdefault(upstream, []).append(name)
        # The most specific pattern first (`groq/*` before `*`).
        wildcards.sort(key=lambda d: len(d.model_name), reverse=True)
        self.groups, self.wildcards, self.by_upstream_model = groups, wildcards, by_upstream_model
        self.by_id = {d.id: d for d in deployments}

    def group(self, model: str) -> list[Deployment]:
        group = self.groups.get(model)
        if group:
            return group
        for d in self.wildcards:
            if d.matches(model) is not None:
                return [d]
        return []

    def pick(self, model: str) -> Deployment:
        return self.plan(model).deployments[0]

    def plan(self, model: str) -> Plan:
        group = self.group(model)
        if not group:
            raise _not_found(model)
        ordered = group if len(group) == 1 else self._order(group)
        return Plan(
            ordered,
            self._members(self.settings.fallbacks.get(model, ())),
            self._members(self.settings.context_window_fallbacks.get(model, ())),
        )

    def _members(self, groups: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for name in groups:
            group = self.group(name)
            out.extend(d.id for d in (self._order(group) if len(group) > 1 else group))
        return out

    def _order(self, group: list[Deployment]) -> list[Deployment]:
        strategy = self.settings.routing_strategy
        if strategy == "least-busy":
            ordered = sorted(group, key=lambda d: (self.in_flight.get(d.id, 0), random.random()))
        elif strategy == "latency-based-routing":
            ordered = sorted(group, key=lambda d: (self.latency.get(d.id, 0.0), random.random()))
        else:  # simple-shuffle: a weighted random order (Efraimidis-Spirakis keys)
            ordered = sorted(group, key=lambda d: random.random() ** (1.0 / max(d.weight, 1e-9)), reverse=True)
        board = self.board
        if board is not None and board.until:
            ordered.sort(key=lambda d: board.cooling(d.id))  # stable: cooled ones last, order kept
        return ordered

    def started(self, deployment_id: str) -> None:
        self.in_flight[deployment_id] = self.in_flight.get(deployment_id, 0) + 1

    def finished(self, started_on: str, answered_by: str | None, latency: float | None) -> None:
        """A request sent to `started_on` is over; `answered_by` served it in `latency` seconds."""
        n = self.in_flight.get(started_on, 0)
        if n > 1:
            self.in_flight[started_on] = n - 1
        else:
            self.in_flight.pop(started_on, None)
        if answered_by is not None and latency is not None:
            old = self.latency.get(answered_by)
            self.latency[answered_by] = latency if old is None else old + LATENCY_WEIGHT * (latency - old)

    def model_names(self) -> list[tuple[str, str]]:
        """(model name, provider) of every concrete model group, for /v1/models."""
        return [(name, deps[0].provider) for name, deps in sorted(self.groups.items())]
