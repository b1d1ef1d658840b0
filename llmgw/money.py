"""Money as people read it: a fixed number of decimals, never an exponent (`0.0000108`, not
`1.08e-05`, nor the float noise of `1.0800000000000002e-05`)."""

from __future__ import annotations

import math
from decimal import Context, Decimal

MONEY_DECIMALS = 9  # what the usage store keeps (Decimal(18, 9))


def decimal_text(value: float, decimals: int | None = MONEY_DECIMALS, min_decimals: int = 0) -> str:
    """`value` in positional notation, rounded to `decimals` (None: the float's shortest form),
    trailing zeros dropped down to `min_decimals` (`0.5`, `12`, `0.0000108`; `12.0` with 1)."""
    if not math.isfinite(value):
        return str(value)
    number = Decimal(repr(value))
    if decimals is not None:
        precision = max(28, number.adjusted() + decimals + 2)  # (room for every digit kept)
        number = number.quantize(Decimal(1).scaleb(-decimals), context=Context(prec=precision))
    whole, _, fraction = format(number, "f").partition(".")
    fraction = fraction.rstrip("0").ljust(min_decimals, "0")
    text = f"{whole}.{fraction}" if fraction else whole
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text


def money_text(value: float) -> str:
    """`$0.0000108`, `$12.50`, `-$1.20`: an amount in US dollars, for a table."""
    text = decimal_text(value, min_decimals=2)
    return "-$" + text[1:] if text.startswith("-") else "$" + text
