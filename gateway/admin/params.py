"""Parsing and checking admin parameters: durations, budgets, defaults and upper bounds."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType
from llmgw.durations import duration_seconds

T = TypeVar("T")

MAX_DURATION_SECONDS = 100 * 365 * 86400

# Fields whose value must not be negative.
NON_NEGATIVE = ("max_budget", "soft_budget", "spend", "max_parallel_requests", "tpm_limit", "rpm_limit")


class LimitParams(msgspec.Struct, kw_only=True):
    """The budget and rate-limit fields a key and a team each take (llmgw.contracts.Limits);
    UNSET tells "not given" apart from null."""

    max_budget: float | UnsetType | None = UNSET
    soft_budget: float | UnsetType | None = UNSET
    model_max_budget: dict[str, float] | UnsetType | None = UNSET
    max_parallel_requests: int | UnsetType | None = UNSET
    tpm_limit: int | UnsetType | None = UNSET
    rpm_limit: int | UnsetType | None = UNSET
    budget_duration: str | UnsetType | None = UNSET
    budget_id: str | UnsetType | None = UNSET  # a budget object (/budget/new) bounding the holder


def bad_param(param: str | None, message: str) -> GatewayError:
    return GatewayError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def parse_duration(value: str, param: str = "duration") -> float:
    """ "30s", "20m", "30h", "30d" (also "30min", "2w", "1mo") -> seconds; 400 naming the field."""
    try:
        seconds = duration_seconds(value)
    except ValueError:
        raise bad_param(param, f"`{param}` must look like 30s, 20m, 30h or 30d; got {value!r}") from None
    if seconds > MAX_DURATION_SECONDS or (param == "budget_duration" and seconds <= 0):
        raise bad_param(
            param, f"`{param}` must be {'more than 0 and ' if param == 'budget_duration' else ''}at most 100 years; got {value!r}"
        )
    return seconds


def decode_body(body: bytes, kind: type[T]) -> T:
    """Decode an admin request body; 400 naming the field on a wrong type."""
    if not body.strip():
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        match = re.search(r"at `\$\.([^`]*)`", str(exc)) or re.search(r"field `([^`]+)`", str(exc))
        raise bad_param(match[1] if match else None, f"Invalid request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise bad_param(None, f"Invalid JSON body: {exc}") from None


def check_non_negative(values: Mapping[str, Any]) -> None:
    for name in NON_NEGATIVE:
        v = values.get(name)
        if v is not None and v < 0:
            raise bad_param(name, f"`{name}` must not be negative; got {v}")
    for model, budget in (values.get("model_max_budget") or {}).items():
        if budget is not None and budget < 0:
            raise bad_param("model_max_budget", f"`model_max_budget[{model}]` must not be negative")


def apply_defaults(values: dict[str, Any], defaults: Mapping[str, Any], given: set[str]) -> None:
    """`default_key_generate_params`: fill what the request did not give."""
    for name, value in defaults.items():
        if name not in given and value is not None:
            values[name] = value


def apply_upper_bounds(values: dict[str, Any], bounds: Mapping[str, Any]) -> None:
    """`upperbound_key_generate_params`: a value above its bound is lowered to the bound; a value
    left out (or null, which means unlimited) is above every bound, so it becomes the bound too."""
    for name, bound in bounds.items():
        if bound is None:
            continue
        value = values.get(name)
        if name in ("duration", "budget_duration"):
            if value is None or parse_duration(value, name) > parse_duration(bound, name):
                values[name] = bound
        elif isinstance(bound, (int, float)) and (value is None or value > bound):
            values[name] = bound


def record_values(
    values: Mapping[str, Any], record_type: type, allowed: set[str] | frozenset[str] | None = None
) -> dict[str, Any]:
    """Request values as fields of `record_type` (keys, users, teams alike): a null for a list or a
    map means empty, a null for a flag, an amount or a role leaves it as it is; budgets are checked
    and a budget period starts now."""
    fields = {f.name: f for f in msgspec.structs.fields(record_type)}
    out: dict[str, Any] = {}
    for name, value in values.items():
        field = fields.get(name)
        if field is None or (allowed is not None and name not in allowed):
            continue
        if value is None and field.default_factory is not msgspec.NODEFAULT:
            value = field.default_factory()
        elif value is None and field.default is not None and field.default is not msgspec.NODEFAULT:
            continue
        out[name] = value
    check_non_negative(out)
    if out.get("budget_duration"):
        out["budget_reset_at"] = time.time() + parse_duration(out["budget_duration"], "budget_duration")
    return out


def expires_at(duration: str | None) -> float | None:
    return None if duration is None else time.time() + parse_duration(duration)
