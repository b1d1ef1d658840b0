"""Money fields of admin answers written as money: rounded to the store's decimals, without an
exponent (`0.0000108`, never `1.08e-05` or `1.0800000000000002e-05`), and still JSON numbers."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from llmgw.money import decimal_text

# Fields that hold an amount in US dollars; under MONEY_MAPS, every value of the mapping is one.
MONEY_FIELDS = frozenset({"spend", "max_budget", "soft_budget", "total_spend", "cost", "spent"})
MONEY_MAPS = frozenset({"model_max_budget", "model_spend"})


def _amount(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return msgspec.Raw(decimal_text(value, min_decimals=1).encode())
    return value


def with_money(body: Any) -> Any:
    """`body` (dicts and lists) with every money field's float as a positional JSON number."""
    if isinstance(body, list):
        return [with_money(item) for item in body]
    if not isinstance(body, dict):
        return body
    out: dict[Any, Any] = {}
    for name, value in body.items():
        if name in MONEY_FIELDS:
            out[name] = _amount(value)
        elif name in MONEY_MAPS and isinstance(value, dict):
            out[name] = {k: _amount(v) for k, v in value.items()}
        else:
            out[name] = with_money(value)
    return out
