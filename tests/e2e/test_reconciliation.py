"""Spend reconciled against the provider's own records, end to end: real requests metered by
the stack (edge, worker, metering on nats-server and chdb), the provider's usage and cost reports
served by bench/fake_provider_reports.py, read by metering's reconciler with an admin key sealed
through the admin API; then `GET /spend/reconciliation`, `llmgw reconcile` and the alerts stream
show exact agreement (gpt-4o), a known drift (gpt-3.5-turbo billed 10 % more output), outside
traffic on a provider key llmgw never sent with (OpenAI) and on a key of llmgw's for a model it never
sent to (Anthropic), and a stale price (gpt-3.5-turbo input)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import defaultdict
from datetime import datetime

import httpx
import msgspec
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from llmgw.contracts import ReconciliationAlert, Subjects
from llmgw.prices import table_price
from tests.e2e.stack import MASTER_KEY, UPSTREAM_KEY, Stack
from tests.procs import REPO, FakeUpstream
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
ADMIN_KEY = "sk-admin-reports-e2e-000999"
OURS, LEAKED = "key_llmgw_e2e", "key_leaked_e2e"
HOUR = 3600


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("reports"), ADMIN_KEY, module="bench.fake_provider_reports").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, reports, tmp_path_factory: pytest.TempPathFactory):
    upstream = FakeUpstream(tmp_path_factory.mktemp("upstream"), UPSTREAM_KEY).start()
    env = {
        "LLMGW_RECONCILE_PROVIDERS": "openai,anthropic",
        "LLMGW_RECONCILE_ANTHROPIC_API_BASE": reports.root_url,
        "LLMGW_RECONCILE_ANTHROPIC_ADMIN_KEY": ADMIN_KEY,  # from the environment; OpenAI's is sealed by the API
        "LLMGW_RECONCILE_ANTHROPIC_KEY_IDS": "apikey_ours",
        "LLMGW_RECONCILE_OPENAI_API_BASE": reports.root_url,
        "LLMGW_RECONCILE_OPENAI_KEY_IDS": OURS,
        "LLMGW_RECONCILE_INTERVAL": "1",
        "LLMGW_RECONCILE_LOOKBACK_HOURS": "3",
        "LLMGW_RECONCILE_ALERT_DELAY_MINUTES": "-60",  # the current hour is alerted on at once
    }
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2ereconcile", upstream, env).start()
    yield s
    s.stop()
    upstream.stop()


def per_million(rate: float) -> float:
    return rate * 1_000_000


def chat(http: httpx.Client, stack: Stack, model: str) -> str:
    resp = http.post(
        f"{stack.base_url}/v1/chat/completions",
        json={"model": model, "max_tokens": 12, "messages": [{"role": "user", "content": "Reconcile me"}]},
        headers=ADMIN,
    )
    assert resp.status_code == 200, resp.text
    return resp.headers["x-request-id"]


def billing(rows: list[dict], model: str, output_factor: float = 1.0, input_price: float | None = None) -> list[dict]:
    """The provider's records of these metered requests (per hour), as the fake takes them."""
    price = table_price(model, "openai")
    assert price is not None
    hours: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        ts = int(datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp())
        h = hours[ts - ts % HOUR]
        h["requests"] += 1
        h["input_tokens"] += r["prompt_tokens"]
        h["output_tokens"] += r["completion_tokens"]
    return [
        {
            "provider": "openai", "hour": hour, "model": f"{model}-2024-08-06" if model == "gpt-4o" else model,
            "api_key_id": OURS, "project_id": "proj_e2e", "requests": t["requests"], "input_tokens": t["input_tokens"],
            "cached_tokens": 0, "output_tokens": round(t["output_tokens"] * output_factor),
            "prices": {"input": input_price if input_price is not None else per_million(price.input),
                       "cached_input": per_million(price.cached_input), "output": per_million(price.output)},
        }
        for hour, t in hours.items()
    ]  # fmt: skip


def alerts(stack: Stack) -> list[ReconciliationAlert]:
    async def read() -> list[ReconciliationAlert]:
        nc = await nats.connect(stack.nats_url)
        subjects = Subjects(stack.prefix)
        try:
            sub = await nc.jetstream().subscribe(
                subjects.reconciliation_alert("*"),
                stream=subjects.alerts_stream,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
            )
            out = []
            while True:
                try:
                    msg = await sub.next_msg(timeout=1)
                except nats.errors.TimeoutError:
                    return out
                out.append(msgspec.json.decode(msg.data, type=ReconciliationAlert))
        finally:
            await nc.close()

    return asyncio.run(read())


def test_reconciliation_shows_agreement_drift_outside_traffic_and_a_stale_price(stack, reports):
    with httpx.Client(timeout=60) as http:
        refused = http.post(
            f"{stack.base_url}/spend/reconciliation/credentials", json={"provider": "openai", "admin_key": ""}, headers=ADMIN
        )
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "admin_key"
        resp = http.post(
            f"{stack.base_url}/spend/reconciliation/credentials",
            json={"provider": "openai", "admin_key": ADMIN_KEY},
            headers=ADMIN,
        )
        assert resp.status_code == 200, resp.text
        assert ADMIN_KEY not in resp.text and resp.json()["admin_key"].endswith(ADMIN_KEY[-4:])
        listed = http.get(f"{stack.base_url}/spend/reconciliation/credentials", headers=ADMIN).json()
        assert ADMIN_KEY not in json.dumps(listed) and [d["provider"] for d in listed["data"]] == ["openai"]

        exact = [chat(http, stack, "gpt-4") for _ in range(3)]
        drifted = [chat(http, stack, "gpt-3.5-turbo") for _ in range(2)]
        rows = stack.usage_rows(exact + drifted)
        exact_rows = [rows[i] for i in exact]
        drift_rows = [rows[i] for i in drifted]
        stale_input = per_million(table_price("gpt-3.5-turbo", "openai").input) * 1.5  # type: ignore[union-attr]
        records = billing(exact_rows, "gpt-4o") + billing(drift_rows, "gpt-3.5-turbo", 1.1, input_price=stale_input)
        hour = records[0]["hour"]
        records.append({
            "provider": "openai", "hour": hour, "model": "gpt-4o-2024-08-06", "api_key_id": LEAKED, "project_id": "proj_e2e",
            "requests": 7, "input_tokens": 7000, "cached_tokens": 0, "output_tokens": 700,
            "prices": {"input": 2.5, "cached_input": 1.25, "output": 10.0},
        })  # fmt: skip
        # on a key llmgw holds, a model llmgw never sent to: outside traffic all the same
        records.append({
            "provider": "anthropic", "hour": hour, "model": "claude-sonnet-4-5-20250929", "api_key_id": "apikey_ours",
            "project_id": "wrkspc_e2e", "requests": 2, "input_tokens": 1200, "cached_tokens": 200, "cache_write_tokens": 0,
            "output_tokens": 90, "prices": {"input": 3.0, "cached_input": 0.3, "output": 15.0},
        })  # fmt: skip
        assert http.post(f"{reports.root_url}/_fake/billing", json={"records": records}).status_code == 200

        def report() -> dict | None:
            body = http.get(f"{stack.base_url}/spend/reconciliation", headers=ADMIN).json()
            ready = len(body.get("outside_traffic") or []) == 2 and body.get("stale_prices") and len(body["lines"]) >= 2
            return body if ready else None

        body = eventually_sync(report, "the reconciliation of the billed records", timeout=30)

    metered_cost = sum(r["cost"] for r in exact_rows)
    ok = [line for line in body["lines"] if line["model"] == "gpt-4o"]
    assert [line["kind"] for line in ok] == ["ok"] * len(ok)
    assert sum(line["metered_requests"] for line in ok) == sum(line["billed_requests"] for line in ok) == 3
    assert sum(line["billed_input_tokens"] for line in ok) == sum(r["prompt_tokens"] for r in exact_rows)
    assert all(line["token_drift"] == 0 for line in ok)
    assert sum(line["billed_cost"] for line in ok) == pytest.approx(metered_cost, rel=1e-6)
    assert sum(line["metered_cost"] for line in ok) == pytest.approx(metered_cost, rel=1e-9)

    drift = [line for line in body["lines"] if line["model"] == "gpt-3.5-turbo"]
    assert {line["kind"] for line in drift} == {"drift"}
    billed_out = sum(line["billed_output_tokens"] for line in drift)
    metered_out = sum(r["completion_tokens"] for r in drift_rows)
    assert sum(line["metered_output_tokens"] for line in drift) == metered_out
    assert billed_out == sum(round(r["output_tokens"]) for r in records if r["model"] == "gpt-3.5-turbo")
    assert sum(line["token_drift"] for line in drift) == metered_out - billed_out < 0

    leaked, unsent = sorted(body["outside_traffic"], key=lambda line: line["provider"], reverse=True)
    assert (unsent["provider"], unsent["model"], unsent["account"]) == ("anthropic", "claude-sonnet-4-5", "")
    assert unsent["billed_requests"] is None and unsent["billed_input_tokens"] == 1200 and unsent["billed_output_tokens"] == 90
    assert unsent["billed_cost"] == pytest.approx(1000 * 3e-6 + 200 * 0.3e-6 + 90 * 15e-6)
    outside = leaked
    assert outside["account"] == LEAKED and outside["model"] == "gpt-4o" and outside["billed_requests"] == 7
    assert outside["billed_input_tokens"] == 7000 and outside["billed_cost"] == pytest.approx(7000 * 2.5e-6 + 700 * 1e-5)

    (stale,) = body["stale_prices"]
    assert (stale["model"], stale["token_type"]) == ("gpt-3.5-turbo", "input")
    assert stale["provider_price"] == pytest.approx(stale_input, rel=1e-6)
    assert stale["llmgw_price"] == pytest.approx(0.5)
    assert stale["difference_relative"] == pytest.approx(-1 / 3, rel=1e-3)
    assert body["summary"]["outside"] == 2 and body["summary"]["stale_prices"] == 1 and body["summary"]["drift"] >= 1

    env = {"PATH": "/usr/bin:/bin", "LLMGW_URL": stack.base_url, "LLMGW_MASTER_KEY": MASTER_KEY}
    done = subprocess.run(
        [sys.executable, "-m", "llmgw_cli", "reconcile"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "2 outside traffic" in text and "1 stale prices" in text
    assert LEAKED in text and "gpt-3.5-turbo" in text and "drift" in text
    assert "lines that do not agree" in text and "gpt-4o " not in text.split("outside traffic (")[0].split("agree:")[1]
    checked = subprocess.run(
        [sys.executable, "-m", "llmgw_cli", "reconcile", "--check"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 3 and checked.stdout == text
    as_json = subprocess.run(
        [sys.executable, "-m", "llmgw_cli", "reconcile", "--json"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert json.loads(as_json.stdout)["summary"] == body["summary"]

    def alerted() -> list[ReconciliationAlert] | None:
        found = alerts(stack)
        kinds = {a.kind for a in found}
        return found if {"drift", "outside", "stale_price"} <= kinds else None

    found = eventually_sync(alerted, "the reconciliation alerts", timeout=30)
    assert not [a for a in found if a.model == "gpt-4o" and a.kind != "outside"]
    assert sorted((a.provider, a.account) for a in found if a.kind == "outside") == [("anthropic", ""), ("openai", LEAKED)]
    assert ADMIN_KEY not in stack.logs()
