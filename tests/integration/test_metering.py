"""Metering as its own process (`python -m metering`) on a real nats-server with chdb: one process
serves these tests (test_metering_restarts.py stops and starts one of its own; only one process
may open a chdb directory).

Usage events are published to JetStream the way a worker does; everything is read back through
metering's NATS query service.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmgw.contracts import encode_json
from metering.rows import USAGE_COLUMNS
from tests.integration.metering_support import (
    METERING_NOT_ANSWERING,
    Metering,
    consumer_settled,
    count_for_key,
    publish,
    rows,
    sql,
    usage_event,
    wait_count,
    wait_ready,
)
from tests.procs import REPO
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SQL_DIR = Path(__file__).resolve().parents[2] / "metering" / "sql"


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
async def shared(nats_server, nc, tmp_path_factory):
    """One metering process for the tests that do not stop it."""
    metering = Metering(nats_server.url, tmp_path_factory.mktemp("metering-shared")).start()
    await wait_ready(nc, metering)
    yield metering
    assert metering.stop() == 0, metering.log()


# ------------------------------------------------------------------- one shared metering process


async def test_usage_table_columns_are_the_contract_fields(nc, shared) -> None:
    found = await rows(
        nc, shared, "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'usage' ORDER BY position"
    )
    assert tuple(r["name"] for r in found) == USAGE_COLUMNS


async def test_rows_land_with_exact_values(nc, js, shared) -> None:
    full = usage_event(
        key_alias="ci-key",
        user_id="user-1",
        team_id="team-1",
        cached_tokens=3,
        reasoning_tokens=4,
        cost=0.000123456,
        ttft_ms=35.25,
        stream=True,
        attempt=2,
    )
    failed = usage_event(
        key_hash=full.key_hash,
        status="upstream_error",
        http_status=502,
        error_code="upstream_error",
        prompt_tokens=0,
        completion_tokens=0,
        cost=0.0,
        cost_known=False,
        usage_source="none",
    )
    for event in (full, failed):
        await publish(js, shared.subjects, event)
    await wait_count(nc, shared, full.key_hash, 2)

    found = await rows(
        nc,
        shared,
        "SELECT *, toUnixTimestamp64Milli(ts) AS ts_ms FROM usage FINAL WHERE key_hash = {k:String}",
        k=full.key_hash,
    )
    by_id = {r["request_id"]: r for r in found}
    for event in (full, failed):
        row = by_id[event.request_id]
        ms = round(event.ts * 1000)
        assert row.pop("ts_ms") == ms
        stored_ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        assert row.pop("ts") == stored_ts.isoformat().replace("+00:00", "Z")
        expected = {name: getattr(event, name) for name in USAGE_COLUMNS if name != "ts"}
        assert row == expected


async def test_the_same_event_twice_yields_one_row(nc, js, shared) -> None:
    event = usage_event()
    await publish(js, shared.subjects, event)
    await publish(js, shared.subjects, event)  # the same Nats-Msg-Id: JetStream keeps one
    await publish(js, shared.subjects, event, msg_id=False)  # stored twice more: metering drops them
    await publish(js, shared.subjects, event, msg_id=False)
    marker = usage_event(key_hash=event.key_hash)  # lands once everything before it was handled
    await publish(js, shared.subjects, marker)

    await wait_count(nc, shared, event.key_hash, 2)
    assert await count_for_key(nc, shared, event.key_hash, final=False) == 2
    spend = await rows(
        nc, shared, "SELECT sum(requests) AS n FROM spend_daily WHERE dimension = 'key' AND id = {k:String}", k=event.key_hash
    )
    assert spend[0]["n"] == 2


async def test_rollups_equal_the_raw_sums(nc, js, shared) -> None:
    tag = uuid.uuid4().hex[:8]
    keys = [f"k-{tag}-{i}" for i in range(3)]
    users = [f"u-{tag}-{i}" for i in range(2)]
    teams = [f"t-{tag}"]
    models = [f"m-{tag}-{i}" for i in range(2)]
    events = [
        usage_event(
            key_hash=keys[i % 3],
            user_id=users[i % 2] if i % 4 else None,
            team_id=teams[0] if i % 3 else None,
            model_group=models[i % 2],
            prompt_tokens=i * 7,
            completion_tokens=i * 3,
            cached_tokens=i,
            cost=round(0.0001 * i, 6),
            status="success" if i % 5 else "upstream_error",
            cost_known=bool(i % 6),
            ts=round(time.time() - i * 1800, 3),  # spread over hours (and days)
        )
        for i in range(60)
    ]
    for event in events + events[:10]:  # ten of them twice
        await publish(js, shared.subjects, event, msg_id=False)
    marker = usage_event(key_hash=keys[0], model_group=models[0], cost=0.0, prompt_tokens=0, completion_tokens=0)
    await publish(js, shared.subjects, marker)
    await wait_count(nc, shared, keys[0], 21)

    raw_columns = {
        "key": "key_hash",
        "user": "user_id",
        "team": "team_id",
        "model": "model_group",
    }
    ids = {"key": keys, "user": users, "team": teams, "model": models}
    measures = (
        "count() AS requests, countIf(status != 'success') AS errors, countIf(NOT cost_known) AS unpriced,"
        " sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,"
        " sum(cached_tokens) AS cached_tokens, sum(cost) AS cost"
    )
    rolled = (
        "sum(requests) AS requests, sum(errors) AS errors, sum(unpriced) AS unpriced, sum(prompt_tokens) AS prompt_tokens,"
        " sum(completion_tokens) AS completion_tokens, sum(cached_tokens) AS cached_tokens, sum(cost) AS cost"
    )
    for dimension, column in raw_columns.items():
        raw = await rows(
            nc,
            shared,
            f"SELECT {column} AS id, toStartOfHour(ts) AS hour, {measures} FROM usage FINAL"
            f" WHERE {column} IN {{ids:Array(String)}} GROUP BY id, hour ORDER BY id, hour",
            ids=ids[dimension],
        )
        hourly = await rows(
            nc,
            shared,
            f"SELECT id, hour, {rolled} FROM spend_hourly WHERE dimension = {{d:String}} AND id IN {{ids:Array(String)}}"
            " GROUP BY id, hour ORDER BY id, hour",
            d=dimension,
            ids=ids[dimension],
        )
        assert hourly == raw and raw, dimension
        raw_daily = await rows(
            nc,
            shared,
            f"SELECT {column} AS id, toDate(ts) AS day, {measures} FROM usage FINAL"
            f" WHERE {column} IN {{ids:Array(String)}} GROUP BY id, day ORDER BY id, day",
            ids=ids[dimension],
        )
        daily = await rows(
            nc,
            shared,
            f"SELECT id, day, {rolled} FROM spend_daily WHERE dimension = {{d:String}} AND id IN {{ids:Array(String)}}"
            " GROUP BY id, day ORDER BY id, day",
            d=dimension,
            ids=ids[dimension],
        )
        assert daily == raw_daily and raw_daily, dimension


async def test_a_malformed_message_does_not_stop_the_consumer(nc, js, shared) -> None:
    subject = shared.subjects.usage("openai", "success")
    await js.publish(subject, b"this is not json")
    await js.publish(subject, b'{"request_id": 42}')
    await js.publish(subject, encode_json(usage_event(prompt_tokens=-5)))  # valid JSON, cannot be a row
    event = usage_event()
    await publish(js, shared.subjects, event)

    await wait_count(nc, shared, event.key_hash, 1)
    await eventually(
        lambda: consumer_settled(js, shared), "the bad messages to be terminated", timeout=20, retrying=METERING_NOT_ANSWERING
    )
    assert shared.proc.running
    assert shared.log().count('"usage_event_rejected"') >= 3


async def test_the_query_service_is_read_only(nc, shared) -> None:
    for statement in (
        "INSERT INTO usage (request_id, key_hash) VALUES ('x', 'y')",
        "DROP TABLE usage",
        "ALTER TABLE usage DELETE WHERE 1",
        "CREATE TABLE evil (a Int8) ENGINE = Memory",
        "SET readonly = 0",
        "SELECT 1 SETTINGS readonly = 0",
    ):
        result = await sql(nc, shared, statement)
        assert result.error and "READONLY" in result.error, statement
        assert "Traceback" not in result.error
    assert (await rows(nc, shared, "EXISTS TABLE usage")) == [{"result": 1}]


async def test_query_errors_come_back_as_messages(nc, shared) -> None:
    bad_sql = await sql(nc, shared, "SELEC 1")
    assert bad_sql.error and "SYNTAX_ERROR" in bad_sql.error and bad_sql.rows == []
    missing = await sql(nc, shared, "SELECT {n:UInt8}")
    assert missing.error and "UNKNOWN_QUERY_PARAMETER" in missing.error
    too_big = await sql(nc, shared, "SELECT number FROM numbers(300000)")
    assert too_big.error and "LIMIT" in too_big.error
    reply = await nc.request(shared.subjects.metering_query, b"{not json", timeout=5)
    assert b"invalid query request" in reply.data


@pytest.mark.parametrize("path", sorted(SQL_DIR.glob("*.sql")), ids=lambda p: p.stem)
async def test_dashboard_queries_run(nc, js, shared, path: Path) -> None:
    event = usage_event(team_id="team-dash", user_id="user-dash", key_alias="dash", tags=["dash"], ttft_ms=12.0, stream=True)
    await publish(js, shared.subjects, event)
    await wait_count(nc, shared, event.key_hash, 1)
    text = await asyncio.to_thread(path.read_text)
    parameters = {name: 5 if name == "limit" else 7 for name in re.findall(r"\{(\w+):", text)}
    result = await sql(nc, shared, text, **parameters)
    assert result.error is None, result.error
    assert result.rows, path.name


def test_a_bad_setting_exits_2_with_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "LLMGW_METERING_BATCH_SIZE": "0", "LLMGW_CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}"}
    done = subprocess.run([sys.executable, "-m", "metering"], env=env, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "LLMGW_METERING_BATCH_SIZE" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ch").exists()
