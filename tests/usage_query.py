"""Reading ClickHouse through metering's query service, the way every other reader does."""

from __future__ import annotations

import asyncio

import nats

from llmgw.contracts import QueryRequest, Subjects, decode_query_result, encode_json
from tests.waiting import eventually_sync


async def _query(nats_url: str, prefix: str, sql: str, parameters: dict) -> tuple[list[str], list[list]]:
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.request(Subjects(prefix).metering_query, encode_json(QueryRequest(sql, parameters)), timeout=10)
    finally:
        await nc.close()
    result = decode_query_result(msg.data)
    if result.error:
        raise RuntimeError(result.error)
    return result.columns, result.rows


def query(nats_url: str, prefix: str, sql: str, parameters: dict | None = None) -> list[dict]:
    columns, rows = asyncio.run(_query(nats_url, prefix, sql, parameters or {}))
    return [dict(zip(columns, row, strict=True)) for row in rows]


def usage_rows(nats_url: str, prefix: str, request_ids: list[str], timeout: float = 20) -> dict[str, dict]:
    """The usage rows of these requests, once all of them have landed (by request id)."""
    sql = "SELECT * FROM usage FINAL WHERE request_id IN {ids:Array(String)}"

    def landed():
        rows = query(nats_url, prefix, sql, {"ids": request_ids})
        return rows if len(rows) >= len(set(request_ids)) else None

    rows = eventually_sync(landed, f"{len(set(request_ids))} usage rows", timeout=timeout, interval=0.25)
    return {r["request_id"]: r for r in rows}
