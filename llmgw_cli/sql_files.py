"""Queries kept in `.sql` files (metering/sql/): their parameters, from the SQL's `{name:Type}`
placeholders and the comment header that says what each one means:

    -- What the query answers.
    -- Parameters:
    --   {days:UInt32}  how many days back, today included
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

_PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")
_DOCUMENTED = re.compile(r"^--\s+\{(\w+):([^{}]+)\}\s*(.*)$")


class Parameter(msgspec.Struct, frozen=True):
    name: str
    type: str
    meaning: str = ""


def header(text: str) -> list[str]:
    """The comment lines the file starts with."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        out.append(stripped)
    return out


def documented_parameters(text: str) -> dict[str, Parameter]:
    """The parameters the header describes, by name."""
    found: dict[str, Parameter] = {}
    for line in header(text):
        match = _DOCUMENTED.match(line)
        if match:
            name, kind, meaning = match.groups()
            found[name] = Parameter(name, kind.strip(), meaning.strip())
    return found


def parameters(text: str) -> list[Parameter]:
    """Every parameter the query binds, in order of first use, with its meaning when documented."""
    documented = documented_parameters(text)
    body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    seen: dict[str, Parameter] = {}
    for name, kind in _PLACEHOLDER.findall(body):
        if name not in seen:
            seen[name] = documented.get(name) or Parameter(name, kind.strip())
    return list(seen.values())


def missing(text: str, given: Iterable[str]) -> list[Parameter]:
    have = set(given)
    return [p for p in parameters(text) if p.name not in have]


def describe_missing(where: str, absent: list[Parameter]) -> str:
    width = max(len(p.name) for p in absent)
    lines = [f"llmgw sql: {where} needs {'a parameter' if len(absent) == 1 else 'parameters'} not given:"]
    for p in absent:
        meaning = f"  {p.meaning}" if p.meaning else ""
        lines.append(f"  --param {(p.name + '=...').ljust(width + 4)}  ({p.type}){meaning}")
    return "\n".join(lines)
