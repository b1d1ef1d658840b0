"""Queries metering keeps under a name (`NamedQuery`): other processes ask for them by name and
parameters, so the SQL against metering's tables is written here only.

Each query's text is put together from fixed fragments; every value is a bound parameter, checked
for its type here before ClickHouse sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

from llmgw.contracts import NamedQuery
from metering.query_errors import NamedQueryError
from metering.reconcile.queries import reconciliation, stale_prices

__all__ = ["NAMED_QUERIES", "NamedQueryError", "named_query"]

MAX_LOG_LIMIT = 1000  # an answer travels as one NATS message


LOG_COLUMNS = """
    request_id, response_id, operation, key_hash, key_alias, user_id, team_id, end_user, model_group, upstream_model, deployment_id,
    provider, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost, cost_known,
    toUnixTimestamp64Milli(ts) AS ts_ms, latency_ms, ttft_ms, status, http_status, error_code, usage_source,
    stream, attempt, tags
"""
# filter parameter -> condition on `usage`, its value bound as the parameter of the same name
FILTERS = {
    "key_hash": "key_hash = {key_hash:String}",
    "user_id": "user_id = {user_id:String}",
    "team_id": "team_id = {team_id:String}",
    "end_user": "end_user = {end_user:String}",
    # llmgw's request id (`x-request-id`) or the `id` of the answer the client got (`chatcmpl-...`)
    "request_id": (
        "(request_id = {request_id:String} OR response_id = {request_id:String} OR client_request_id = {request_id:String})"
    ),
    "start_date": "toDate(ts) >= {start_date:Date}",
    "end_date": "toDate(ts) <= {end_date:Date}",
}
DATE_FILTERS = ("start_date", "end_date")
# spend report group_by (the contract's SPEND_REPORT_GROUPS) -> column of `usage`
# (a row with several tags counts once for each of them)
GROUP_COLUMNS = {
    "team": "team_id",
    "user": "user_id",
    "api_key": "key_hash",
    "model": "model_group",
    "customer": "end_user",
    "tag": "arrayJoin(tags)",
}


def _filters(parameters: Mapping[str, object], allowed: tuple[str, ...]) -> tuple[str, dict[str, object]]:
    """The WHERE clause of the given filters, and their bound values (checked)."""
    bound: dict[str, object] = {}
    for name in allowed:
        value = parameters.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise NamedQueryError(f"parameter {name!r}: expected a non-empty string")
        if name in DATE_FILTERS:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise NamedQueryError(f"parameter {name!r}: expected a date as YYYY-MM-DD, got {value!r}") from None
        bound[name] = value
    conditions = [FILTERS[name] for name in allowed if name in bound]
    return ("WHERE " + " AND ".join(conditions) if conditions else ""), bound


def _only(parameters: Mapping[str, object], known: set[str]) -> None:
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise NamedQueryError(f"unknown parameter(s) {', '.join(unknown)}; this query takes {', '.join(sorted(known))}")


def spend_logs(parameters: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """Usage rows, newest first, at most `limit`, filtered by key, user, team, request and days."""
    _only(parameters, {*FILTERS, "limit"})
    limit = parameters.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LOG_LIMIT:
        raise NamedQueryError(f"parameter 'limit': expected a whole number from 1 to {MAX_LOG_LIMIT}, got {limit!r}")
    where, bound = _filters(parameters, tuple(FILTERS))
    sql = f"SELECT {LOG_COLUMNS} FROM usage FINAL {where} ORDER BY ts DESC, request_id LIMIT {{limit:UInt32}}"
    return sql, {**bound, "limit": limit}


def spend_report(parameters: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """Spend, tokens and requests per (group, model), the group one of SPEND_REPORT_GROUPS."""
    _only(parameters, {*DATE_FILTERS, "group_by"})
    group_by = parameters.get("group_by")
    if group_by not in GROUP_COLUMNS:
        raise NamedQueryError(f"parameter 'group_by': expected one of {', '.join(GROUP_COLUMNS)}, got {group_by!r}")
    where, bound = _filters(parameters, DATE_FILTERS)
    column = GROUP_COLUMNS[str(group_by)]
    sql = (
        f"SELECT {column} AS group_key, model_group AS model, count() AS requests, sum(cost) AS spend,"
        " sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens"
        f" FROM usage FINAL {where} GROUP BY group_key, model"
    )
    return sql, bound


def spend_tags(parameters: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """Requests and spend per request tag (a request with several tags counts for each; rows
    without a tag are not in it), the biggest spender first."""
    _only(parameters, set(DATE_FILTERS))
    where, bound = _filters(parameters, DATE_FILTERS)
    sql = (
        "SELECT arrayJoin(tags) AS tag, count() AS log_count, sum(cost) AS total_spend"
        f" FROM usage FINAL {where} GROUP BY tag ORDER BY total_spend DESC, tag"
    )
    return sql, bound


MAX_HEALTH_MINUTES = 1440
# A failure that tells of the deployment (its credential, its capacity, its server), not of the
# request: a client's bad request passed through (400, 404, 413, 422) does not count.
DEPLOYMENT_FAILURE = "status IN ('upstream_error', 'error') AND (http_status IN (401, 403, 408, 429) OR http_status >= 500)"


def deployment_health(parameters: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """Per deployment over the last `minutes`: requests, failures, and the latest request's outcome."""
    _only(parameters, {"minutes"})
    minutes = parameters.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_HEALTH_MINUTES:
        raise NamedQueryError(f"parameter 'minutes': expected a whole number from 1 to {MAX_HEALTH_MINUTES}, got {minutes!r}")
    sql = (
        "SELECT deployment_id, count() AS requests,"
        f" countIf({DEPLOYMENT_FAILURE}) AS failures,"
        " toUnixTimestamp64Milli(max(ts)) / 1000 AS last_ts,"
        " argMax(status, ts) AS last_status, argMax(http_status, ts) AS last_http_status,"
        " argMax(error_code, ts) AS last_error_code,"
        f" argMax({DEPLOYMENT_FAILURE}, ts) AS last_failed"
        " FROM usage FINAL WHERE ts >= now64(3) - toIntervalMinute({minutes:UInt32})"
        " GROUP BY deployment_id"
    )
    return sql, {"minutes": minutes}


NAMED_QUERIES: dict[str, Callable[[Mapping[str, object]], tuple[str, dict[str, object]]]] = {
    NamedQuery.SPEND_LOGS: spend_logs,
    NamedQuery.SPEND_REPORT: spend_report,
    NamedQuery.DEPLOYMENT_HEALTH: deployment_health,
    NamedQuery.SPEND_TAGS: spend_tags,
    NamedQuery.RECONCILIATION: reconciliation,
    NamedQuery.STALE_PRICES: stale_prices,
}


def named_query(name: str, parameters: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """The SQL and bound parameters of the query `name`; NamedQueryError if it cannot be made."""
    build = NAMED_QUERIES.get(name)
    if build is None:
        raise NamedQueryError(f"no named query {name!r}; known: {', '.join(NAMED_QUERIES)}")
    return build(parameters)
