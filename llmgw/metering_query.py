"""Asking metering's query service from another process (the admin API, `llmgw sql`, tests).

Metering owns the usage store; everyone else reads it over NATS request/reply: read-only SQL, or
a query metering keeps under a name (`NamedQuery`), whose SQL only metering writes.
"""

from __future__ import annotations

from collections.abc import Mapping

from nats.aio.client import Client

from llmgw.contracts import QueryRequest, QueryResult, Subjects, decode_query_result, encode_json


async def ask_metering(nc: Client, subjects: Subjects, request: QueryRequest, timeout: float = 10.0) -> QueryResult:
    """One query; ClickHouse errors (and a named query's refusals) come back in `result.error`.

    Raises `nats.errors.NoRespondersError` when no metering process is up,
    `nats.errors.TimeoutError` when none answers in time."""
    reply = await nc.request(subjects.metering_query, encode_json(request), timeout=timeout)
    return decode_query_result(reply.data)


async def query_metering(
    nc: Client,
    subjects: Subjects,
    sql: str,
    parameters: Mapping[str, object] | None = None,
    timeout: float = 10.0,
) -> QueryResult:
    """Run read-only SQL in metering; `parameters` bind `{name:Type}` placeholders server-side."""
    return await ask_metering(nc, subjects, QueryRequest(sql=sql, parameters=dict(parameters or {})), timeout)


async def query_named(
    nc: Client,
    subjects: Subjects,
    name: str,
    parameters: Mapping[str, object] | None = None,
    timeout: float = 10.0,
) -> QueryResult:
    """Run the query metering keeps under `name` (a `NamedQuery`) with these parameters."""
    return await ask_metering(nc, subjects, QueryRequest(name=name, parameters=dict(parameters or {})), timeout)
