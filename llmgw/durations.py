"""Durations as admins write them ("30s", "20m", "30h", "30d", also "30min", "2w", "1mo"), and the
budget periods they define."""

from __future__ import annotations

import re

_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?|w|weeks?|mo|months?)\s*$"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400}


def duration_seconds(value: str) -> float:
    """Seconds in a duration; ValueError if it is not one."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    unit = match[2]
    return float(match[1]) * _UNIT_SECONDS["mo" if unit.startswith("mo") else unit[0]]


def budget_period(budget_duration: str | None, anchor: float, now: float) -> int:
    """Index of the budget period `now` falls in, periods starting at `anchor` (0 without one)."""
    if not budget_duration:
        return 0
    return max(0, int((now - anchor) // duration_seconds(budget_duration)))


def period_reset_at(budget_duration: str | None, anchor: float, now: float) -> float | None:
    """When the current budget period ends and spend starts again from zero."""
    if not budget_duration:
        return None
    length = duration_seconds(budget_duration)
    return anchor + (budget_period(budget_duration, anchor, now) + 1) * length
