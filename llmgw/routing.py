"""Router settings (LiteLLM's `router_settings`) and the cooldown board every edge and worker keeps.

```yaml
router_settings:
  routing_strategy: simple-shuffle     # or least-busy, latency-based-routing
  num_retries: 2                       # more tries of one deployment (429, 5xx, timeouts) before the next
  allowed_fails: 3                     # failures in a minute before a deployment is cooled down
  cooldown_time: 30                    # seconds a cooled-down deployment is skipped
  fallbacks: [{"gpt-4": ["gpt-3.5-turbo"]}]
  context_window_fallbacks: [{"gpt-3.5-turbo": ["gpt-4-32k"]}]
```

`fallbacks`, `context_window_fallbacks` and `num_retries` are also read from `litellm_settings`,
where LiteLLM configs often put them.

A request's plan is built by the edge (the chosen deployment, the rest of its group, then the
fallback groups) and walked by the worker; a worker that sees a deployment fail `allowed_fails`
times within a minute broadcasts a cooldown, and every router skips it until it expires.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from llmgw.config import ConfigError, GatewayConfig
from llmgw.contracts import DeploymentCooldown, Subjects, decode_cooldown, encode_internal

log = structlog.get_logger()

STRATEGIES = ("simple-shuffle", "least-busy", "latency-based-routing")
_ALIASES = {"shuffle": "simple-shuffle", "latency-based": "latency-based-routing", "usage-based-routing": "simple-shuffle"}
# Upstream answers worth another try elsewhere (the request itself is fine).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
CONTEXT_WINDOW_CODES = frozenset({"context_length_exceeded", "context_window_exceeded"})


class RouterSettings(msgspec.Struct, frozen=True, kw_only=True):
    routing_strategy: str = "simple-shuffle"
    num_retries: int = 0
    allowed_fails: int = 3
    cooldown_time: float = 5.0
    retry_backoff: float = 0.25  # seconds before the first retry of a deployment; doubles each time
    fallbacks: dict[str, tuple[str, ...]] = {}
    context_window_fallbacks: dict[str, tuple[str, ...]] = {}


def _fallback_map(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    """LiteLLM's `[{"gpt-4": ["gpt-3.5"]}, ...]` (or a plain mapping) -> {group: fallback groups}."""
    if value is None:
        return {}
    items = value if isinstance(value, list) else [value]
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a list of {{model: [fallback models]}} mappings")
        for group, targets in item.items():
            targets = [targets] if isinstance(targets, str) else targets
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise ConfigError(f"{where}.{group}: expected a list of model names")
            out[str(group)] = tuple(targets)
    return out


def router_settings(config: GatewayConfig) -> RouterSettings:
    merged = {**config.litellm_settings, **config.router_settings}
    strategy = str(merged.get("routing_strategy", "simple-shuffle"))
    strategy = _ALIASES.get(strategy, strategy)
    if strategy not in STRATEGIES:
        raise ConfigError(f"router_settings.routing_strategy: one of {', '.join(STRATEGIES)}, got {strategy!r}")
    try:
        return RouterSettings(
            routing_strategy=strategy,
            num_retries=int(merged.get("num_retries") or 0),
            allowed_fails=int(merged.get("allowed_fails", 3)),
            cooldown_time=float(merged.get("cooldown_time", 5.0)),
            retry_backoff=float(merged.get("retry_after", merged.get("retry_backoff", 0.25)) or 0.0),
            fallbacks=_fallback_map(merged.get("fallbacks"), "router_settings.fallbacks"),
            context_window_fallbacks=_fallback_map(
                merged.get("context_window_fallbacks"), "router_settings.context_window_fallbacks"
            ),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"router_settings: {exc}") from None


class CooldownBoard:
    """Deployments cooled down, as broadcast on the bus; and, on workers, the failure counts that
    put one in cooldown. One per process."""

    def __init__(self, subjects: Subjects, settings: RouterSettings) -> None:
        self.nc: Client | None = None
        self.subjects = subjects
        self.settings = settings
        self.until: dict[str, float] = {}
        self.reasons: dict[str, str] = {}  # deployment id -> why it was cooled down last
        self._fails: dict[str, deque[float]] = {}
        self._sub: Subscription | None = None

    async def start(self, nc: Client) -> None:
        self.nc = nc
        self._sub = await nc.subscribe(self.subjects.router_cooldown, cb=self._on_cooldown)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_cooldown(self, msg: Msg) -> None:
        try:
            event = decode_cooldown(msg.data)
        except msgspec.DecodeError:
            return
        self.until[event.deployment_id] = max(self.until.get(event.deployment_id, 0.0), event.until)
        self.reasons[event.deployment_id] = event.reason

    def cooling(self, deployment_id: str, now: float | None = None) -> bool:
        until = self.until.get(deployment_id)
        return until is not None and until > (time.time() if now is None else now)

    async def failed(self, deployment_id: str, reason: str) -> None:
        """Count a failure; past `allowed_fails` in a minute, cool the deployment down everywhere."""
        now = time.time()
        window = self._fails.setdefault(deployment_id, deque())
        window.append(now)
        while window and window[0] < now - 60.0:
            window.popleft()
        if len(window) <= self.settings.allowed_fails or self.cooling(deployment_id, now):
            return
        window.clear()
        until = now + self.settings.cooldown_time
        self.until[deployment_id] = until
        self.reasons[deployment_id] = reason
        log.warning("deployment_cooldown", deployment=deployment_id, seconds=self.settings.cooldown_time, reason=reason)
        try:
            assert self.nc is not None, "CooldownBoard.start() first"
            await self.nc.publish(
                self.subjects.router_cooldown, encode_internal(DeploymentCooldown(deployment_id, until, reason))
            )
        except Exception as exc:
            log.warning("cooldown_publish_failed", error=str(exc) or type(exc).__name__)

    def succeeded(self, deployment_id: str) -> None:
        window = self._fails.get(deployment_id)
        if window:
            window.clear()
