"""ClickHouse failing under the usage consumer: the batch is held, kept from redelivery, retried,
and lands exactly once; a stop during the outage gives the batch back to JetStream.

The outage is real: the `usage` table is renamed away and back. That needs the chdb engine the
consumer writes to, so the scenario runs in a subprocess (`python -m` this module; the pytest
process never opens chdb) and prints what it saw as its last line of JSON.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import clickhouse_connect
import nats
import pytest
import structlog

from llmgw.bus import ensure_usage_stream
from llmgw.contracts import MSG_ID_HEADER, Subjects, UsageEvent, encode_json
from llmgw.logs import configure_logging
from metering.consumer import UsageConsumer
from metering.store import UsageStore
from tests.procs import REPO
from tests.waiting import eventually

pytestmark = pytest.mark.integration

ACK_WAIT = 1.0  # short, so an outage several times as long would redeliver without in_progress()
EVENTS = 40


async def _acked_all(consumer_state, n: int) -> int:
    """The consumer's ack floor once it has reached `n` (0, "not yet", before)."""
    floor = (await consumer_state())["acked_up_to"]
    return floor if floor >= n else 0


def test_a_clickhouse_outage_loses_and_duplicates_nothing(nats_server, bus_prefix: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.test_metering_outage", nats_server.url, bus_prefix, str(tmp_path / "ch")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert done.stdout.count('"usage_insert_failed"') >= 3
    assert done.stdout.count('"usage_batch_returned"') == 1
    assert seen["during_outage"] == {"ack_pending": EVENTS, "delivered": EVENTS, "acked_up_to": 0}  # held, not redelivered
    assert seen["after_recovery"] == {"rows": EVENTS, "rows_no_final": EVENTS, "rolled_requests": EVENTS}
    assert seen["stopped_during_outage"] == {"acked_up_to": EVENTS, "rows": EVENTS}  # given back, not acked
    total = EVENTS + 5
    assert seen["after_restart"] == {"rows": total, "rows_no_final": total, "rolled_requests": total, "acked_up_to": total}


# ---------------------------------------------------------------- the scenario (subprocess)


async def _scenario(nats_url: str, prefix: str, path: str) -> dict:
    configure_logging("metering-outage", "info")
    logged: Counter[str] = Counter()  # the log events so far, by name (each still printed)

    def count_event(_logger: object, _method: str, event: dict) -> dict:
        logged[event["event"]] += 1
        return event

    structlog.configure(processors=[count_event, *structlog.get_config()["processors"]])
    dsn = f"chdb://{path}"
    store = UsageStore.open(dsn)
    store.migrate(0)
    admin = clickhouse_connect.get_client(dsn=dsn)  # same engine, a writable session of its own
    subjects = Subjects(prefix)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_usage_stream(js, subjects, 3600.0)

    def consumer() -> UsageConsumer:
        return UsageConsumer(js, subjects, store, batch_size=100, flush_interval=0.1, stream_max_age=3600.0, ack_wait=ACK_WAIT)

    async def publish(n: int) -> None:
        for _ in range(n):
            event = UsageEvent(
                request_id=uuid.uuid4().hex, ts=time.time(), key_hash="k-outage", operation="chat", model_group="m",
                deployment_id="d", provider="openai", upstream_model="u", latency_ms=5.0, status="success",
                http_status=200, usage_source="provider", stream=False, cost=0.5,
            )  # fmt: skip
            headers = {MSG_ID_HEADER: event.request_id}
            await js.publish(subjects.usage("openai", "success"), encode_json(event), headers=headers)

    async def consumer_state() -> dict:
        info = await js.consumer_info(subjects.usage_stream, subjects.metering_consumer)
        return {
            "ack_pending": info.num_ack_pending,
            "delivered": info.delivered.consumer_seq,
            "acked_up_to": info.ack_floor.stream_seq,
        }

    def totals() -> dict:
        q = store.query
        return {
            "rows": q("SELECT count() FROM usage FINAL")[1][0][0],
            "rows_no_final": q("SELECT count() FROM usage")[1][0][0],
            "rolled_requests": q("SELECT sum(requests) FROM spend_daily WHERE dimension = 'key'")[1][0][0],
        }

    async def holding(n: int) -> bool:
        return (await consumer_state())["ack_pending"] == n

    async def stored(n: int) -> bool:
        return totals()["rows"] == n

    seen: dict = {}

    # 1. An outage several ack_waits long: the batch is held and retried, then lands once.
    first = consumer()
    await first.setup()
    admin.command("RENAME TABLE usage TO usage_away")
    await publish(EVENTS)
    stop = asyncio.Event()
    running = asyncio.create_task(first.run(stop))
    await eventually(lambda: holding(EVENTS), "the consumer to hold the batch")
    await asyncio.sleep(ACK_WAIT * 3)  # the outage's length, the behaviour under test: past the ack wait
    seen["during_outage"] = await consumer_state()
    admin.command("RENAME TABLE usage_away TO usage")
    await eventually(lambda: stored(EVENTS), "the held batch to land")
    seen["after_recovery"] = totals()

    # 2. Stopped while ClickHouse is down: the batch goes back to JetStream, nothing is acked.
    admin.command("RENAME TABLE usage TO usage_away")
    await publish(5)
    await eventually(lambda: holding(5), "the consumer to hold the second batch")
    failed_before = logged["usage_insert_failed"]
    await eventually(lambda: logged["usage_insert_failed"] > failed_before, "the insert to be tried and fail", timeout=20)
    stop.set()
    await running
    await first.close()
    admin.command("RENAME TABLE usage_away TO usage")
    seen["stopped_during_outage"] = {"acked_up_to": (await consumer_state())["acked_up_to"], "rows": totals()["rows"]}

    # 3. The next run takes the given-back events.
    second = consumer()
    await second.setup()
    stop = asyncio.Event()
    running = asyncio.create_task(second.run(stop))
    await eventually(lambda: stored(EVENTS + 5), "the given-back events to land")
    stop.set()
    await running
    await second.close()
    # Acks are published after the insert: the server's ack floor follows a moment later.
    acked = await eventually(lambda: _acked_all(consumer_state, EVENTS + 5), "the given-back events to be acked", timeout=10)
    seen["after_restart"] = {**totals(), "acked_up_to": acked}

    await nc.close()
    admin.close()
    store.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_scenario(*sys.argv[1:4]))), flush=True)
