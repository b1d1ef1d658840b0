"""Metering's reconciler as production runs it: a metering process (its own chdb directory, a real
nats-server) reading the fake report APIs (bench/fake_provider_reports.py, a process of its own)
on a short schedule. Usage published as workers do; the comparison read by name over NATS; each
alert published once however many times the reports are read; a provider that refuses the admin
key leaves the other's reconciliation standing and its key out of the log."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import msgspec
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from llmgw.contracts import MSG_ID_HEADER, NamedQuery, ReconciliationAlert
from llmgw.metering_query import query_named
from tests.integration.metering_support import Metering, publish, usage_event, wait_count, wait_ready
from tests.procs import FakeUpstream
from tests.waiting import eventually

pytestmark = pytest.mark.integration

ADMIN_KEY = "sk-admin-integration-4242"
HOUR = 3600


@pytest.fixture
def reports(tmp_path: Path):
    (tmp_path / "reports").mkdir()
    fake = FakeUpstream(tmp_path / "reports", ADMIN_KEY, module="bench.fake_provider_reports").start()
    yield fake
    fake.stop()


async def alerts(js, metering: Metering) -> list[tuple[str, ReconciliationAlert]]:
    sub = await js.subscribe(
        metering.subjects.reconciliation_alert("*"),
        stream=metering.subjects.alerts_stream,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
    )
    out = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                return out
            out.append(((msg.headers or {}).get(MSG_ID_HEADER, ""), msgspec.json.decode(msg.data, type=ReconciliationAlert)))
    finally:
        await sub.unsubscribe()


async def test_lines_kinds_and_alerts_once(nats_server, reports, tmp_path: Path) -> None:
    now = time.time()
    hour = int(now) - int(now) % HOUR
    metering = Metering(
        nats_server.url,
        tmp_path,
        LLMGW_SECRET_KEY="integration-secret-key-0123456789",
        LLMGW_RECONCILE_PROVIDERS="openai,anthropic",
        LLMGW_RECONCILE_OPENAI_API_BASE=reports.root_url,
        LLMGW_RECONCILE_OPENAI_ADMIN_KEY=ADMIN_KEY,
        LLMGW_RECONCILE_ANTHROPIC_API_BASE=reports.root_url,
        LLMGW_RECONCILE_ANTHROPIC_ADMIN_KEY="sk-ant-admin-wrong-7777",  # refused: OpenAI's still read
        LLMGW_RECONCILE_INTERVAL="0.5",
        LLMGW_RECONCILE_LOOKBACK_HOURS="2",
        LLMGW_RECONCILE_ALERT_DELAY_MINUTES="-60",
    ).start()
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await wait_ready(nc, metering)
        events = [
            usage_event(key_hash="kh-rec", upstream_model="gpt-4o", prompt_tokens=100, completion_tokens=10, cost=0.00035),
            usage_event(key_hash="kh-rec", upstream_model="gpt-4o", prompt_tokens=100, completion_tokens=10, cost=0.00035),
            # one request more than billed, same tokens in all: drift by the request count
            usage_event(key_hash="kh-rec", upstream_model="gpt-4o-mini", prompt_tokens=50, completion_tokens=5, cost=0.00001),
            usage_event(key_hash="kh-rec", upstream_model="gpt-4o-mini", prompt_tokens=0, completion_tokens=0, cost=0.0),
            # metered, never billed
            usage_event(key_hash="kh-rec", upstream_model="o3", prompt_tokens=10, completion_tokens=10, cost=0.0001),
            # a refusal is not billed and not compared
            usage_event(key_hash="kh-rec", upstream_model="gpt-4o", status="refused", http_status=429, usage_source="none"),
        ]
        for event in events:
            await publish(js, metering.subjects, event)
        await wait_count(nc, metering, "kh-rec", len(events))
        prices = {"input": 2.5, "cached_input": 1.25, "output": 10.0}
        billed = [
            {"provider": "openai", "hour": hour, "model": "gpt-4o-2024-08-06", "api_key_id": "key_a", "project_id": "p",
             "requests": 2, "input_tokens": 200, "cached_tokens": 0, "output_tokens": 20, "prices": prices},
            {"provider": "openai", "hour": hour, "model": "gpt-4o-mini-2024-07-18", "api_key_id": "key_a", "project_id": "p",
             "requests": 1, "input_tokens": 50, "cached_tokens": 0, "output_tokens": 5,
             "prices": {"input": 0.15, "cached_input": 0.075, "output": 0.6}},
        ]  # fmt: skip
        async with httpx.AsyncClient() as client:
            assert (await client.post(f"{reports.root_url}/_fake/billing", json={"records": billed})).status_code == 200

        window = {"start": f"{time.strftime('%Y-%m-%dT%H:00:00Z', time.gmtime(hour - HOUR))}", "threshold": 0.02}
        window["end"] = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(hour + HOUR))

        async def lines() -> dict[str, dict] | None:
            result = await query_named(nc, metering.subjects, NamedQuery.RECONCILIATION, window, timeout=5)
            assert result.error is None, result.error
            found = {row[1]: dict(zip(result.columns, row, strict=True)) for row in result.rows}
            return found if {"gpt-4o", "gpt-4o-mini", "o3"} <= set(found) and found["gpt-4o"]["billed_cost"] else None

        found = await eventually(lines, "the reconciliation lines", timeout=30)
        assert found["gpt-4o"]["kind"] == "ok" and found["gpt-4o"]["metered_requests"] == 2
        assert found["gpt-4o"]["billed_cost"] == pytest.approx(200 * 2.5e-6 + 20 * 1e-5)
        assert found["gpt-4o-mini"]["kind"] == "drift" and found["gpt-4o-mini"]["token_drift"] == 0
        assert (found["gpt-4o-mini"]["metered_requests"], found["gpt-4o-mini"]["billed_requests"]) == (2, 1)
        assert found["o3"]["kind"] == "unbilled" and found["o3"]["billed_requests"] is None
        assert found["o3"]["billed_cost"] is None and found["o3"]["token_drift_relative"] is None

        async def all_alerted() -> list | None:
            got = await alerts(js, metering)
            return got if {a.model for _, a in got} >= {"gpt-4o-mini", "o3"} else None

        await eventually(all_alerted, "the alerts", timeout=30)
        reads = reports.stats()["pages"]["/v1/organization/usage/completions"]
        await eventually(
            lambda: _later(reports, reads + 3), "three more reads of the reports", timeout=30, retrying=(httpx.HTTPError,)
        )
        got = await alerts(js, metering)
        assert Counter(msg_id for msg_id, _ in got).most_common(1)[0][1] == 1  # each alerted once
        kinds = {(a.model, a.kind) for _, a in got}
        assert kinds == {("gpt-4o-mini", "drift"), ("o3", "unbilled")}
        assert reports.stats()["auth_failures"] > 0
        log = metering.log()
        assert "reconcile_report_failed" in log and "anthropic" in log
        assert ADMIN_KEY not in log and "sk-ant-admin-wrong-7777" not in log
    finally:
        await nc.close()
        metering.stop()


async def _later(reports: FakeUpstream, reads: int) -> bool:
    return reports.stats()["pages"]["/v1/organization/usage/completions"] >= reads
