"""Asking metering's query service from another process (tests, `llmgw sql`, the admin API)."""

from __future__ import annotations

from collections.abc import Mapping

from nats.aio.client import Client

from llmgw.contracts import QueryRequest, QueryResult, Subjects, decode_query_result, encode_json


async def query_metering(
    nc: Client,
    subjects: Subjects,
    sql: str,
    parameters: Mapping[str, object] | None = None,
    timeout: float = 10.0,
) -> QueryResult:
    """Run a read-only SQL query in metering; ClickHouse errors come back in `result.error`.

    `parameters` bind `{name:Type}` placeholders server-side. Raises `nats.errors.NoRespondersError`
    when no metering process is up, `nats.errors.TimeoutError` when none answers in time.
    """
    request = QueryRequest(sql=sql, parameters=dict(parameters or {}))
    reply = await nc.request(subjects.metering_query, encode_json(request), timeout=timeout)
    return decode_query_result(reply.data)
