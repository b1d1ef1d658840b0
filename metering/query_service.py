"""Metering's read service: SQL over NATS request/reply, answered from the store.

Everything else (tests, `llmgw sql`, the admin API) reads ClickHouse through this, because
metering owns the embedded store. The request is a JSON `QueryRequest` (read-only SQL, or the
name of a query metering keeps, with its parameters), the answer a JSON `QueryResult`: rows of
JSON values, or the error message. Queries are read-only.
Several metering processes (against one ClickHouse server) share the subject as a queue group.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import msgspec
import structlog
from clickhouse_connect.driver.exceptions import Error as ClickHouseError
from nats.aio.client import Client
from nats.aio.msg import Msg

from llmgw.contracts import QueryResult, Subjects, decode_query_request, encode_json
from metering.named_queries import NamedQueryError, named_query
from metering.store import UsageStore

log = structlog.get_logger()

QUEUE_GROUP = "metering"
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def json_value(value: object) -> object:
    """A ClickHouse value as a JSON-friendly one (datetimes as ISO 8601 UTC, Decimals as floats)."""
    if value is None or isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _UINT64_MAX else str(value)  # (U)Int128/256
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple, set)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, UUID):
        return str(value)
    return str(value)  # IP addresses, enums and anything else with a text form


def run_query(store: UsageStore, payload: bytes) -> QueryResult:
    """Answer one encoded `QueryRequest` (blocking: run it in a thread)."""
    try:
        request = decode_query_request(payload)
    except msgspec.DecodeError as exc:
        return QueryResult(error=f"invalid query request: {exc}")
    sql, parameters = request.sql, request.parameters
    if request.name is not None:
        try:
            sql, parameters = named_query(request.name, request.parameters)
        except NamedQueryError as exc:
            return QueryResult(error=f"named query {request.name!r}: {exc}")
    try:
        columns, rows = store.query(sql, parameters)
    except ClickHouseError as exc:
        return QueryResult(error=str(exc))
    return QueryResult(columns=columns, rows=[[json_value(v) for v in row] for row in rows])


class QueryService:
    def __init__(self, nc: Client, subjects: Subjects, store: UsageStore) -> None:
        self._nc = nc
        self._subjects = subjects
        self._store = store

    async def start(self) -> None:
        # One callback at a time per subscription: queries run one after another.
        await self._nc.subscribe(self._subjects.metering_query, queue=QUEUE_GROUP, cb=self._answer)

    async def _answer(self, msg: Msg) -> None:
        if not msg.reply:
            return
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(run_query, self._store, msg.data)
        except Exception as exc:
            log.warning("query_failed", error=str(exc) or type(exc).__name__, exc_info=True)
            result = QueryResult(error=f"{type(exc).__name__}: {exc}")
        payload = encode_json(result)
        if len(payload) > self._nc.max_payload:
            payload = encode_json(
                QueryResult(
                    error=f"the result is {len(payload)} bytes, over the bus limit of {self._nc.max_payload};"
                    " select fewer rows (LIMIT) or columns"
                )
            )
        log.debug(
            "query_answered",
            rows=len(result.rows),
            error=result.error,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        try:
            await msg.respond(payload)
        except Exception as exc:
            log.warning("query_reply_failed", error=str(exc) or type(exc).__name__)
