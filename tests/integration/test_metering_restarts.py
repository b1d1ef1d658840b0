"""Metering stopped and started (`python -m metering`, real nats-server and chdb): a held batch
flushed on SIGTERM, events published while it is down, a full redelivery, migrations applied once.
These tests share one metering process of their own, left running after each test.
"""

from __future__ import annotations

import uuid

import pytest

from llmgw.bus import ensure_usage_stream
from metering.migrate import load_migrations
from tests.integration.metering_support import (
    METERING_NOT_ANSWERING,
    RETENTION,
    Metering,
    consumer_settled,
    count_for_key,
    publish,
    rows,
    usage_event,
    wait_count,
    wait_ready,
)
from tests.procs import log_events
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def own(nats_server, nc, tmp_path_factory):
    """A metering process the tests stop and start; left running after each test."""
    metering = Metering(nats_server.url, tmp_path_factory.mktemp("metering-own"))
    await ensure_usage_stream(nc.jetstream(), metering.subjects, RETENTION)
    yield metering
    metering.stop()


async def restart(nc, metering: Metering, **env: str) -> None:
    assert metering.stop() in (0, None), metering.log()
    metering.start(**env)
    await wait_ready(nc, metering)


async def test_sigterm_flushes_the_held_batch(nc, js, own) -> None:
    await restart(nc, own, LLMGW_METERING_FLUSH_INTERVAL="60")  # holds events until stopped
    key = "held-" + uuid.uuid4().hex[:8]
    for _ in range(50):
        await publish(js, own.subjects, usage_event(key_hash=key))

    async def all_held() -> bool:
        info = await js.consumer_info(own.subjects.usage_stream, own.subjects.metering_consumer)
        return info.num_ack_pending == 50

    await eventually(all_held, "metering to hold the 50 events", timeout=20, retrying=METERING_NOT_ANSWERING)
    assert await count_for_key(nc, own, key) == 0  # nothing inserted yet

    assert own.stop() == 0, own.log()
    assert await consumer_settled(js, own)  # acked, so inserted before the exit
    assert log_events(own.log(), "usage_batch_flushed", rows=50)

    own.start()
    await wait_ready(nc, own)
    assert await count_for_key(nc, own, key) == 50


async def test_events_published_while_metering_is_down_land_once(nc, js, own) -> None:
    assert own.stop() in (0, None)
    key = "down-" + uuid.uuid4().hex[:8]
    for _ in range(200):
        await publish(js, own.subjects, usage_event(key_hash=key))
    own.start()
    await wait_ready(nc, own)
    await wait_count(nc, own, key, 200)
    assert await count_for_key(nc, own, key, final=False) == 200
    distinct = await rows(nc, own, "SELECT uniqExact(request_id) AS n FROM usage WHERE key_hash = {k:String}", k=key)
    assert distinct == [{"n": 200}]


async def test_a_full_redelivery_adds_nothing(nc, js, own) -> None:
    if not own.proc or not own.proc.running:
        await restart(nc, own)
    key = "redo-" + uuid.uuid4().hex[:8]
    for i in range(30):
        await publish(js, own.subjects, usage_event(key_hash=key, cost=0.01 * i))
    await wait_count(nc, own, key, 30)
    totals_sql = (
        "SELECT (SELECT count() FROM usage) AS raw_rows,"
        " (SELECT sum(requests) FROM spend_daily WHERE dimension = 'model') AS rolled_requests,"
        " (SELECT sum(cost) FROM spend_hourly WHERE dimension = 'key') AS rolled_cost"
    )
    before = await rows(nc, own, totals_sql)
    stored = (await js.stream_info(own.subjects.usage_stream)).state.messages

    assert own.stop() == 0, own.log()
    await js.delete_consumer(own.subjects.usage_stream, own.subjects.metering_consumer)  # every event comes again
    own.start()
    await wait_ready(nc, own)
    await eventually(
        lambda: consumer_settled(js, own),
        f"metering to take all {stored} events again",
        timeout=20,
        retrying=METERING_NOT_ANSWERING,
    )

    assert await rows(nc, own, totals_sql) == before
    assert any(e["duplicates"] > 0 for e in log_events(own.log(), "usage_batch_flushed", rows=0))


async def test_migrations_apply_once(nc, own) -> None:
    if not own.proc or not own.proc.running:
        await restart(nc, own)
    migrations_sql = "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
    before = await rows(nc, own, migrations_sql)
    assert [(r["version"], r["name"]) for r in before] == [(m.version, m.name) for m in load_migrations()]
    assert [r["version"] for r in before] == list(range(1, len(before) + 1)) and len(before) >= 3

    await restart(nc, own)

    assert await rows(nc, own, migrations_sql) == before
    assert log_events(own.log(), "metering_ready")[-1]["migrations_applied"] == []
