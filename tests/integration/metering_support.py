"""What the metering modules share: a metering process of a test's own (`python -m metering` on
its own bus prefix and chdb directory), usage events published the way a worker does, and reads
through metering's NATS query service."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from llmgw.contracts import MSG_ID_HEADER, QueryResult, Subjects, UsageEvent, encode_json
from llmgw.metering_query import query_metering
from tests.procs import Proc, component
from tests.waiting import eventually

RETENTION = 30 * 86400.0  # metering's default stream max age: declaring the stream the same way
METERING_NOT_ANSWERING = (NoRespondersError, NatsTimeoutError)  # what a wait on metering retries on


def usage_event(**overrides) -> UsageEvent:
    fields = dict(
        request_id=uuid.uuid4().hex,
        ts=round(time.time(), 3),
        key_hash="kh-" + uuid.uuid4().hex[:8],
        operation="chat",
        model_group="gpt-4",
        deployment_id="dep-a",
        provider="openai",
        upstream_model="gpt-4o",
        prompt_tokens=10,
        completion_tokens=20,
        cost=0.0015,
        latency_ms=120.5,
        status="success",
        http_status=200,
        usage_source="provider",
        stream=False,
        worker_id="w1",
    )
    return UsageEvent(**{**fields, **overrides})


class Metering:
    """A metering process of a test's own: its prefix (a new one unless given), its chdb directory,
    its settings (`env`, over a flush interval of 0.1 s), restartable."""

    def __init__(self, nats_url: str, root: Path, prefix: str | None = None, **env: str) -> None:
        self.subjects = Subjects(prefix or f"m{uuid.uuid4().hex[:10]}")
        self.root = root
        self.env = {
            **os.environ,
            "LLMGW_NATS_URL": nats_url,
            "LLMGW_BUS_PREFIX": self.subjects.prefix,
            "LLMGW_CLICKHOUSE_URL": f"chdb://{root / 'ch'}",
            "LLMGW_METERING_FLUSH_INTERVAL": "0.1",
            **env,
        }
        self.proc: Proc | None = None

    def start(self, **env: str) -> Metering:
        assert self.proc is None or not self.proc.running
        self.proc = component("metering", "metering", {**self.env, **env}, self.root).start()
        return self

    def stop(self) -> int | None:
        return self.proc.stop() if self.proc else None

    def log(self) -> str:
        return self.proc.output() if self.proc else ""


async def sql(nc, metering: Metering, query: str, **parameters) -> QueryResult:
    return await query_metering(nc, metering.subjects, query, parameters, timeout=5)


async def rows(nc, metering: Metering, query: str, **parameters) -> list[dict]:
    result = await sql(nc, metering, query, **parameters)
    assert result.error is None, result.error
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


async def wait_ready(nc, metering: Metering) -> None:
    async def answers() -> bool:
        return (await sql(nc, metering, "SELECT 1")).rows == [[1]]

    await eventually(answers, "metering's query service", timeout=30, retrying=METERING_NOT_ANSWERING)


async def count_for_key(nc, metering: Metering, key_hash: str, final: bool = True) -> int:
    table = "usage FINAL" if final else "usage"
    found = await rows(nc, metering, f"SELECT count() AS n FROM {table} WHERE key_hash = {{k:String}}", k=key_hash)
    return found[0]["n"]


async def wait_count(nc, metering: Metering, key_hash: str, expected: int) -> None:
    async def landed() -> bool:
        return await count_for_key(nc, metering, key_hash) >= expected

    await eventually(landed, f"{expected} rows of {key_hash}", timeout=20, retrying=METERING_NOT_ANSWERING)
    assert await count_for_key(nc, metering, key_hash) == expected


async def publish(js, subjects: Subjects, event: UsageEvent, msg_id: bool = True) -> None:
    headers = {MSG_ID_HEADER: event.request_id} if msg_id else None
    await js.publish(subjects.usage(event.provider, event.status), encode_json(event), headers=headers)


async def consumer_settled(js, metering: Metering) -> bool:
    """Metering has been given every stored message and has acked (or terminated) all of them."""
    info = await js.consumer_info(metering.subjects.usage_stream, metering.subjects.metering_consumer)
    return info.num_pending == 0 and info.num_ack_pending == 0
