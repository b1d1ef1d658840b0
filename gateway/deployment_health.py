"""`GET /health`: each deployment's health, as LiteLLM's proxy answers it (`healthy_endpoints`,
`unhealthy_endpoints`, their counts), for an admin.

By default it calls no model: a deployment's health comes from what the gateway already knows,
- **cooldowns**: a deployment cooled down by the router (too many failures in a minute, on any
  worker) is unhealthy until its cooldown ends, with the failure that caused it;
- **recent traffic**: the usage rows of the last `window` minutes (default 5), read through
  metering: a deployment whose latest request failed through its own fault (a refused
  credential, 408, 429, 5xx, unreachable; not a client's bad request) is unhealthy.
A deployment with neither is healthy, and says it saw no traffic.

`?active=true` (or `general_settings.health_check_active: true`) also calls every deployment the
way LiteLLM's `/health` does: a one-token chat request through the bus and a worker, metered
like any other request of the admin's key; its outcome decides. `?model=` narrows to one model
group, `?model_id=` to one deployment. Wildcard deployments are not called (no model to name).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import msgspec
import structlog
from litestar import Request, Response, get

from gateway.admin.common import iso, json_response
from gateway.admin.models import admin_only
from gateway.admin.params import bad_param
from gateway.auth import Principal
from gateway.edge import Edge
from gateway.errors import GatewayError
from llmgw.config import Deployment
from llmgw.contracts import Completed, Failed, NamedQuery, Operation, UpstreamRequest
from llmgw.metering_query import query_named

log = structlog.get_logger()

DEFAULT_WINDOW_MINUTES = 5
MAX_WINDOW_MINUTES = 1440
ACTIVE_TIMEOUT = 20.0  # seconds an active check waits for its deployment
QUERY_TIMEOUT = 5.0
_PROBE_BODY = msgspec.json.encode(
    {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
)  # (the worker names the upstream model)


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise bad_param("active", f"`active` must be true or false; got {value!r}")


def _window(value: str | None) -> int:
    if value is None:
        return DEFAULT_WINDOW_MINUTES
    if not value.isdigit() or not 1 <= int(value) <= MAX_WINDOW_MINUTES:
        raise bad_param("window", f"`window` is minutes, a whole number from 1 to {MAX_WINDOW_MINUTES}; got {value!r}")
    return int(value)


async def recent_traffic(edge: Edge, minutes: int) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Per deployment id, the recent traffic metering has; and why it is missing, if it is."""
    if edge.nc is None:
        return {}, "not connected to NATS"
    try:
        result = await query_named(edge.nc, edge.subjects, NamedQuery.DEPLOYMENT_HEALTH, {"minutes": minutes}, QUERY_TIMEOUT)
    except Exception as exc:  # no metering, or none answered in time: cooldowns still say something
        return {}, f"metering did not answer ({type(exc).__name__})"
    if result.error is not None:
        log.error("deployment_health_query_failed", error=result.error)
        return {}, "the traffic query failed"
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    return {str(r["deployment_id"]): r for r in rows}, None


async def active_check(edge: Edge, principal: Principal, d: Deployment) -> tuple[bool, str | None, float]:
    """Call the deployment once through a worker: (healthy, error, seconds it took)."""
    request_id = f"health-{uuid.uuid4().hex}"
    started = time.time()
    deadline = started + min(ACTIVE_TIMEOUT, edge.settings.request_timeout)
    request = UpstreamRequest(
        request_id=request_id,
        reply_to=edge.dispatcher.reply_subject,
        operation=Operation.CHAT,
        model_group=d.model_name,
        deployment_id=d.id,
        body=_PROBE_BODY,
        stream=False,
        include_usage=False,
        deadline=deadline,
        received_at=started,
        caller=principal.caller,
    )
    queue = edge.dispatcher.open(request_id)
    try:
        await edge.dispatcher.submit(d.provider, request)
        reply = await edge.dispatcher.next_reply(queue, deadline)
    except GatewayError as exc:
        return False, exc.message, time.time() - started
    finally:
        edge.dispatcher.close(request_id)
    if isinstance(reply, Failed):
        return False, f"{reply.status} {reply.code or ''}: {reply.message}".replace(" :", ":"), time.time() - started
    return isinstance(reply, Completed), None, time.time() - started


def _traffic(row: dict[str, Any] | None, minutes: int) -> dict[str, Any]:
    if row is None:
        return {"window_minutes": minutes, "requests": 0, "failures": 0}
    return {
        "window_minutes": minutes,
        "requests": row["requests"],
        "failures": row["failures"],
        "last_request_at": iso(float(row["last_ts"])),
        "last_status": row["last_status"],
        "last_http_status": row["last_http_status"],
        "last_error_code": row["last_error_code"],
    }


def build_deployment_health_routes(edge: Edge) -> list:
    @get("/health")
    async def health(request: Request) -> Response:
        principal = admin_only(edge, request)
        query = request.query_params
        active = _flag(query.get("active"))
        if active is None:
            active = bool(edge.settings.config.general_settings.get("health_check_active", False))
        minutes = _window(query.get("window"))
        deployments = [
            d for d in edge.deployments() if query.get("model") in (None, d.model_name) and query.get("model_id") in (None, d.id)
        ]
        traffic, traffic_missing = await recent_traffic(edge, minutes)
        checks: dict[str, tuple[bool, str | None, float]] = {}
        if active:
            called = [d for d in deployments if not d.is_wildcard]
            results = await asyncio.gather(*(active_check(edge, principal, d) for d in called))
            checks = {d.id: r for d, r in zip(called, results, strict=True)}
        now = time.time()
        healthy: list[dict[str, Any]] = []
        unhealthy: list[dict[str, Any]] = []
        for d in deployments:
            row = traffic.get(d.id)
            entry: dict[str, Any] = {
                "model": f"{d.provider}/{d.upstream_model}",
                "model_name": d.model_name,
                "model_id": d.id,
                "api_base": d.api_base,
                "recent_traffic": _traffic(row, minutes) if traffic_missing is None else None,
                "cooldown": None,
            }
            error: str | None = None
            until = edge.cooldowns.until.get(d.id)
            if until is not None and until > now:
                reason = edge.cooldowns.reasons.get(d.id, "")
                entry["cooldown"] = {"until": iso(until), "reason": reason}
                error = f"in cooldown until {iso(until)} after repeated failures ({reason})"
            elif row is not None and row["last_failed"]:
                error = f"its latest request failed: {row['last_http_status']} {row['last_error_code'] or ''}".rstrip()
            if d.id in checks:
                ok, check_error, seconds = checks[d.id]
                entry["active_check"] = {"healthy": ok, "error": check_error, "seconds": round(seconds, 3)}
                error = None if ok else f"the active check failed: {check_error}"
            elif active:
                entry["active_check"] = None  # (a wildcard deployment: no model to call)
            entry["source"] = (
                "active_check"
                if d.id in checks
                else "cooldown"
                if entry["cooldown"]
                else "recent_traffic"
                if row is not None
                else "no_traffic"
            )
            if error is None:
                healthy.append(entry)
            else:
                unhealthy.append({**entry, "error": error})
        body: dict[str, Any] = {
            "healthy_endpoints": healthy,
            "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy),
            "unhealthy_count": len(unhealthy),
            "active_check": active,
        }
        if traffic_missing is not None:
            body["recent_traffic_unavailable"] = traffic_missing
        return json_response(body)

    return [health]
