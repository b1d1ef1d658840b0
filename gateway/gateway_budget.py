"""The whole gateway's budget: `litellm_settings.max_budget` and `budget_duration` in the config.

All spend of the gateway (every key's, the master key's included) counts against one ledger of the
budgets bucket, `gateway.<all>`, reserved like any other budget: a request whose worst case does
not fit in what is left is refused (429 `budget_exceeded`, naming the gateway's budget). Its
periods are counted from the epoch, so every edge agrees on when one starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmgw.config import ConfigError
from llmgw.contracts import LedgerKind, Limits, ledger_key
from llmgw.durations import duration_seconds

GATEWAY_LEDGER = ledger_key(LedgerKind.GATEWAY, "all")
GATEWAY_LABEL = "the gateway (litellm_settings.max_budget)"
GATEWAY_ANCHOR = 0.0  # periods of the gateway's budget start at the epoch


def gateway_limits(litellm_settings: Mapping[str, Any]) -> Limits | None:
    """The gateway-wide budget the config sets, or None; ConfigError on a bad value."""
    max_budget = litellm_settings.get("max_budget")
    duration = litellm_settings.get("budget_duration")
    if max_budget is None:
        if duration is not None:
            raise ConfigError("litellm_settings.budget_duration is set without litellm_settings.max_budget")
        return None
    if isinstance(max_budget, bool) or not isinstance(max_budget, (int, float)) or max_budget < 0:
        raise ConfigError(f"litellm_settings.max_budget: expected a number of USD, 0 or more; got {max_budget!r}")
    if duration is not None:
        try:
            if duration_seconds(str(duration)) <= 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"litellm_settings.budget_duration: expected 30s, 20m, 30h or 30d; got {duration!r}") from None
    return Limits(max_budget=float(max_budget), budget_duration=None if duration is None else str(duration))
