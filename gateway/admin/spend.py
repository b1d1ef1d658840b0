"""`GET /spend/logs`, `GET /spend/tags` and `GET /global/spend/report`: spend read from ClickHouse (proxy admins and proxy admin viewers).

The edge asks metering's query service over NATS for the queries metering keeps under a name
(metering owns the store and the SQL against it); the parameters are checked here first, so a
bad one is a 400 naming it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from litestar import Request, Response, get
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from gateway.admin.common import json_response, viewer
from gateway.admin.keys import KeyService
from gateway.admin.params import bad_param
from gateway.edge import Edge
from gateway.errors import GatewayError
from llmgw.contracts import SPEND_REPORT_GROUPS, ErrorCode, ErrorType, NamedQuery
from llmgw.metering_query import query_named

log = structlog.get_logger()

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000  # an answer travels as one NATS message (metering takes as many)
QUERY_TIMEOUT = 15.0
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# group_by value -> the field naming the group in the answer
GROUP_FIELDS = {
    "team": "team_id",
    "user": "user_id",
    "api_key": "api_key",
    "model": "model",
    "customer": "customer",
    "tag": "tag",
}


def parse_date(value: str | None, param: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        if not _DATE.match(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise bad_param(param, f"`{param}` must be a date as YYYY-MM-DD; got {value!r}") from None


def date_range(start_date: str | None, end_date: str | None) -> dict[str, str]:
    """The bound date parameters (UTC days, both ends included); 400 naming the field if bad."""
    start, end = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
    if start and end and end < start:
        raise bad_param("end_date", f"`end_date` ({end}) is before `start_date` ({start})")
    out = {}
    if start:
        out["start_date"] = start.isoformat()
    if end:
        out["end_date"] = end.isoformat()
    return out


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_param("limit", f"`limit` must be a whole number from 1 to {MAX_LIMIT}; got {value!r}")
    return limit


def _iso_ms(ms: float) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


def spend_log(row: dict[str, Any]) -> dict[str, Any]:
    """One usage row in the shape of LiteLLM's spend logs."""
    start = row["ts_ms"]
    prompt, completion = row["prompt_tokens"], row["completion_tokens"]
    return {
        "request_id": row["request_id"],
        "response_id": row["response_id"] or None,
        "call_type": row["operation"],
        "api_key": row["key_hash"],
        "key_alias": row["key_alias"],
        "user": row["user_id"],
        "team_id": row["team_id"],
        "request_tags": row["tags"],
        "end_user": row["end_user"],
        "model": row["upstream_model"],
        "model_group": row["model_group"],
        "model_id": row["deployment_id"],
        "custom_llm_provider": row["provider"],
        "spend": row["cost"],
        "cost_known": row["cost_known"],
        "total_tokens": prompt + completion,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": row["cached_tokens"],
        "reasoning_tokens": row["reasoning_tokens"],
        "startTime": _iso_ms(start),
        "endTime": _iso_ms(start + row["latency_ms"]),
        "completionStartTime": _iso_ms(start + row["ttft_ms"]) if row["ttft_ms"] is not None else None,
        "latency_ms": row["latency_ms"],
        "ttft_ms": row["ttft_ms"],
        "status": row["status"],
        "http_status": row["http_status"],
        "error_code": row["error_code"],
        "stream": row["stream"],
        "usage_source": row["usage_source"],
        "attempt": row["attempt"],
    }


def report(group_by: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of (group, model) totals as one entry per group, the biggest spender first."""
    name = GROUP_FIELDS[group_by]
    groups: dict[Any, dict[str, Any]] = {}
    for row in rows:
        entry = groups.setdefault(row["group_key"], {
            name: row["group_key"], "total_spend": 0.0, "total_tokens": 0, "prompt_tokens": 0,
            "completion_tokens": 0, "requests": 0, "models": [],
        })  # fmt: skip
        tokens = row["prompt_tokens"] + row["completion_tokens"]
        entry["total_spend"] += row["spend"]
        entry["total_tokens"] += tokens
        entry["prompt_tokens"] += row["prompt_tokens"]
        entry["completion_tokens"] += row["completion_tokens"]
        entry["requests"] += row["requests"]
        entry["models"].append({
            "model": row["model"], "spend": row["spend"], "total_tokens": tokens, "prompt_tokens": row["prompt_tokens"],
            "completion_tokens": row["completion_tokens"], "requests": row["requests"],
        })  # fmt: skip
    out = list(groups.values())
    for entry in out:
        entry["total_spend"] = round(entry["total_spend"], 9)  # the store keeps 9 decimals
        entry["models"].sort(key=lambda m: (-m["spend"], m["model"]))
    out.sort(key=lambda e: (-e["total_spend"], str(e[name])))
    return out


async def ask_metering(edge: Edge, name: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (as dicts) of a named query answered by metering; 503/504 when metering cannot answer."""
    if edge.nc is None:
        raise GatewayError(503, "the gateway is not connected to NATS", ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE)
    try:
        result = await query_named(edge.nc, edge.subjects, name, parameters, timeout=QUERY_TIMEOUT)
    except NoRespondersError:
        raise GatewayError(
            503, "metering is not running: spend is read from ClickHouse through it", ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE
        ) from None
    except NatsTimeoutError:
        raise GatewayError(504, "metering did not answer in time", ErrorType.TIMEOUT, ErrorCode.TIMEOUT) from None
    if result.error is not None:
        log.error("spend_query_failed", error=result.error)
        raise GatewayError(500, "the spend query failed", ErrorType.API, ErrorCode.INTERNAL)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def build_spend_routes(edge: Edge, keys: KeyService) -> list:
    @get("/spend/logs")
    async def spend_logs(
        request: Request,
        api_key: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
        end_user: str | None = None,
        request_id: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        limit: str | None = None,
    ) -> Response:
        viewer(edge, request)
        parameters: dict[str, Any] = {"limit": parse_limit(limit), **date_range(start_date, end_date)}
        for name, value in (
            ("key_hash", keys.token_of(api_key) if api_key else None),
            ("user_id", user_id),
            ("team_id", team_id),
            ("end_user", end_user),
            ("request_id", request_id),
        ):
            if value:
                parameters[name] = value
        rows = await ask_metering(edge, NamedQuery.SPEND_LOGS, parameters)
        return json_response([spend_log(r) for r in rows])

    @get("/global/spend/report")
    async def spend_report(
        request: Request,
        start_date: str | None = None,
        end_date: str | None = None,
        group_by: str | None = None,
    ) -> Response:
        viewer(edge, request)
        group_by = group_by or "team"
        if group_by not in SPEND_REPORT_GROUPS:
            raise bad_param("group_by", f"`group_by` must be one of {', '.join(SPEND_REPORT_GROUPS)}; got {group_by!r}")
        parameters: dict[str, Any] = {"group_by": group_by, **date_range(start_date, end_date)}
        rows = await ask_metering(edge, NamedQuery.SPEND_REPORT, parameters)
        return json_response(report(group_by, rows))

    @get("/spend/tags")
    async def spend_tags(request: Request, start_date: str | None = None, end_date: str | None = None) -> Response:
        """LiteLLM's spend per tag: one entry per tag, the biggest spender first."""
        viewer(edge, request)
        rows = await ask_metering(edge, NamedQuery.SPEND_TAGS, date_range(start_date, end_date))
        return json_response([
            {"individual_request_tag": r["tag"], "log_count": r["log_count"], "total_spend": r["total_spend"]} for r in rows
        ])  # fmt: skip

    return [spend_logs, spend_tags, spend_report]
