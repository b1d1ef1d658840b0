"""How the command line prints: tables for people, JSON for programs (`--json`), numbers never
in exponent notation, errors on stderr."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from llmgw.money import decimal_text

MAX_CELL = 60  # a table cell is cut to this many characters (`--json` prints everything)
_encoder = msgspec.json.Encoder()


class Amount(str):
    """A table cell already written (money, `$0.0000108`) that aligns right like a number."""


class CommandError(RuntimeError):
    """A command failed; the message is the line for stderr (exit code 1)."""


def error(message: str) -> None:
    print(message, file=sys.stderr)


def positional(value: Any) -> Any:
    """`value` with every finite float as a JSON number in positional notation (msgspec.Raw)."""
    if isinstance(value, float):
        return msgspec.Raw(decimal_text(value, None).encode()) if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: positional(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [positional(v) for v in value]
    return value


def json_text(value: Any, indent: int = 0) -> str:
    """JSON of `value` with numbers as people write them (`0.0000108`, not `1.08e-05`)."""
    encoded = _encoder.encode(positional(value))
    return (msgspec.json.format(encoded, indent=indent) if indent else encoded).decode()


def pretty_json(raw: bytes) -> str:
    """A JSON answer indented, its numbers kept exactly as they were written."""
    return msgspec.json.format(raw, indent=2).decode()


def cell(value: object) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = decimal_text(value, None)
    elif isinstance(value, int):
        text = str(value)
    else:
        text = json_text(value)
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]], count: bool = True) -> str:
    """Columns padded to their widest cell, numbers right-aligned; `(N rows)` last."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[i], (int, float, Amount)) and not isinstance(row[i], bool) for row in rows if row[i] is not None)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
    if count:
        out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def format_fields(fields: Sequence[tuple[str, str]]) -> str:
    """`name  value` lines, the names padded to one width."""
    width = max((len(name) for name, _ in fields), default=0)
    return "\n".join(f"{name.ljust(width)}  {value}".rstrip() for name, value in fields)
