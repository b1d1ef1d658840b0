"""Which deployment serves a requested model name."""

from __future__ import annotations

import random

from gateway.errors import GatewayError
from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType


class ModelRouter:
    def __init__(self, deployments: tuple[Deployment, ...]) -> None:
        self.groups: dict[str, list[Deployment]] = {}
        self.wildcards: list[Deployment] = []
        for d in deployments:
            if d.is_wildcard:
                self.wildcards.append(d)
            else:
                self.groups.setdefault(d.model_name, []).append(d)
        # The most specific pattern first (`groq/*` before `*`).
        self.wildcards.sort(key=lambda d: len(d.model_name), reverse=True)

    def pick(self, model: str) -> Deployment:
        group = self.groups.get(model)
        if group:
            return group[0] if len(group) == 1 else random.choice(group)
        for d in self.wildcards:
            if d.matches(model) is not None:
                return d
        raise GatewayError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            ErrorType.NOT_FOUND,
            ErrorCode.MODEL_NOT_FOUND,
            "model",
        )

    def model_names(self) -> list[tuple[str, str]]:
        """(model name, provider) of every concrete model group, for /v1/models."""
        return [(name, deps[0].provider) for name, deps in sorted(self.groups.items())]
