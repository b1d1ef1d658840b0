"""What the admin routes share: admin authentication, JSON responses, record rendering."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response

from gateway.admin.money import with_money
from gateway.auth import Principal
from gateway.console.principal import session_principal
from gateway.edge import Edge
from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType

_encoder = msgspec.json.Encoder()

TIME_FIELDS = ("expires", "budget_reset_at", "created_at", "updated_at")


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def json_response(body: Any, status: int = 200) -> Response:
    """The JSON answer of an admin route; money fields written as money (gateway.admin.money)."""
    return Response(content=_encoder.encode(with_money(body)), media_type="application/json", status_code=status)


def render(record: msgspec.Struct) -> dict[str, Any]:
    """A record as the API shows it: times as ISO-8601 strings."""
    out = msgspec.to_builtins(record)
    for name in TIME_FIELDS:
        if name in out:
            out[name] = iso(out[name]) if out[name] else None
    return out


def _principal(edge: Edge, request: Request) -> Principal:
    """The caller of an admin route: its key, or else its console session (gateway/console)."""
    authorization, api_key = request.headers.get("authorization"), request.headers.get("api-key")
    if authorization is None and api_key is None:
        principal = session_principal(edge, request)
        if principal is not None:
            return principal
    return edge.auth.authenticate(authorization, api_key)


def admin(edge: Edge, request: Request) -> Principal:
    """The caller of a route that changes records: a proxy admin (401 without a key, else 403)."""
    return edge.auth.must_admin(_principal(edge, request))


def viewer(edge: Edge, request: Request) -> Principal:
    """The caller of a route that reads every record: a proxy admin or proxy admin viewer."""
    return edge.auth.must_view_all(_principal(edge, request))


def caller(edge: Edge, request: Request) -> Principal:
    """Any valid key (or console session): the route itself scopes what it shows to what it may see."""
    return _principal(edge, request)


def with_spend(edge: Edge, out: dict[str, Any], kind: str, ident: str, record: Any) -> dict[str, Any]:
    """Add the spend of the current budget period (from the record's ledger) and its reset time."""
    spend, reset_at = edge.budgets.period_spend(kind, ident, record.budget_duration, record.created_at)
    out["spend"] = record.spend + spend
    out["budget_reset_at"] = iso(reset_at)
    return out


def known_budget(edge: Edge, values: dict[str, Any]) -> None:
    """400 when `budget_id` names no budget object (a typo must not leave a key unbounded)."""
    budget_id = values.get("budget_id")
    if budget_id is not None and edge.identity.budget(budget_id) is None:
        raise GatewayError(
            400,
            f"no budget with budget_id {budget_id!r}; create it with /budget/new",
            ErrorType.INVALID_REQUEST,
            ErrorCode.INVALID_REQUEST,
            "budget_id",
        )
