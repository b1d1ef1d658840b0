"""Usage events as rows of the `usage` table, and the checks that keep a bad event out of a batch.

The table's columns are the fields of `UsageEvent`, by name, in the contract's order.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from llmgw.contracts import UsageEvent

# Event fields that route the event rather than describe the request: not stored as columns.
NOT_STORED = ("ledgers",)
USAGE_COLUMNS: tuple[str, ...] = tuple(f for f in UsageEvent.__struct_fields__ if f not in NOT_STORED)
_TS_INDEX = USAGE_COLUMNS.index("ts")
_COST_INDEX = USAGE_COLUMNS.index("cost")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TS = 4102444800.0  # 2100-01-01: anything later is a bug upstream, not a timestamp
_UINT32 = 2**32
_UINT16 = 2**16
_MAX_COST = Decimal(10) ** 9  # Decimal(18, 9) holds 9 digits before the point

_UINT32_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
    "images",
    "characters",
    "search_units",
)
_UINT16_FIELDS = ("http_status", "attempt", "upstream_attempts")


def ts_millis(ts: float) -> int:
    """Epoch seconds to whole milliseconds, the precision of `usage.ts`."""
    return round(ts * 1000)


def ts_datetime(ts: float) -> datetime:
    """Epoch seconds to the exact UTC datetime `usage.ts` stores (milliseconds)."""
    return _EPOCH + timedelta(milliseconds=ts_millis(ts))


def usage_problem(event: UsageEvent) -> str | None:
    """Why `event` cannot be stored as a row, or None when it can."""
    if not event.request_id:
        return "request_id is empty"
    if not event.key_hash:
        return "key_hash is empty"
    if not (math.isfinite(event.ts) and 0 < event.ts < _MAX_TS):
        return f"ts {event.ts!r} is not an epoch time in seconds"
    for name in _UINT32_FIELDS:
        if not 0 <= getattr(event, name) < _UINT32:
            return f"{name} {getattr(event, name)} is out of range"
    for name in _UINT16_FIELDS:
        if not 0 <= getattr(event, name) < _UINT16:
            return f"{name} {getattr(event, name)} is out of range"
    if not (math.isfinite(event.audio_seconds) and 0 <= event.audio_seconds < _UINT32):
        return f"audio_seconds {event.audio_seconds!r} is out of range"
    if not (math.isfinite(event.cost) and abs(Decimal(repr(event.cost))) < _MAX_COST):
        return f"cost {event.cost!r} is out of range"
    return None


def usage_row(event: UsageEvent) -> list[object]:
    """The row for `event`, values in `USAGE_COLUMNS` order."""
    row = [getattr(event, name) for name in USAGE_COLUMNS]
    row[_TS_INDEX] = ts_datetime(event.ts)
    row[_COST_INDEX] = Decimal(repr(event.cost))
    return row
