"""Spend read back end to end: `/spend/logs`, `/global/spend/report`, the budget ledgers metering
settles, and the issue's "stop metering, send 500 requests, start it: 500 rows, none twice"."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import nats
import pytest
from nats.js.errors import KeyNotFoundError

from llmgw.contracts import BudgetLedger, LedgerKind, Subjects, ledger_key
from tests.e2e.stack import MASTER_KEY
from tests.procs import REPO
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
        yield client


def new_key(http, stack, **params) -> dict:
    resp = http.post(f"{stack.base_url}/key/generate", json=params, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    return resp.json()


def chat(http, stack, key: str, max_tokens: int = 16, model: str = "gpt-4") -> tuple[str, dict | None]:
    resp = http.post(
        f"{stack.base_url}/v1/chat/completions",
        json={"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "Hello there"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    return resp.headers["x-request-id"], (resp.json().get("usage") if resp.status_code == 200 else None)


def spend(http, stack, path: str, key: str = MASTER_KEY, **params) -> httpx.Response:
    return http.get(f"{stack.base_url}{path}", params=params, headers={"Authorization": f"Bearer {key}"})


def today(days: int = 0) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def read_ledger(stack, key: str) -> BudgetLedger | None:
    async def read() -> BudgetLedger | None:
        nc = await nats.connect(stack.nats_url)
        try:
            kv = await nc.jetstream().key_value(Subjects(stack.prefix).budgets_bucket)
            try:
                return msgspec.json.decode((await kv.get(key)).value, type=BudgetLedger)
            except KeyNotFoundError:
                return None
        finally:
            await nc.close()

    return asyncio.run(read())


def settled_ledger(stack, key: str, total: float) -> BudgetLedger:
    """The ledger once metering has settled `total` into it and no reservation is left."""

    def settled() -> BudgetLedger | None:
        led = read_ledger(stack, key)
        return led if led is not None and not led.reservations and led.spent == pytest.approx(total, abs=1e-9) else None

    return eventually_sync(settled, f"ledger {key} settled", timeout=20, interval=0.1)


@pytest.fixture(scope="module")
def spender(http, stack) -> dict:
    """A key of a user in a team, and the requests it made (ids -> usage the client was told)."""
    tag = uuid.uuid4().hex[:6]
    team = f"spend-team-{tag}"
    assert http.post(f"{stack.base_url}/team/new", json={"team_id": team}, headers=ADMIN).status_code == 200
    resp = http.post(
        f"{stack.base_url}/user/new",
        headers=ADMIN,
        json={"user_id": f"spend-user-{tag}", "team_id": team, "key_alias": f"spender-{tag}"},
    )
    assert resp.status_code == 200, resp.text
    made = resp.json()  # the user's first key
    requests = {}
    for max_tokens in (5, 9, 17, 33):
        request_id, usage = chat(http, stack, made["key"], max_tokens)
        assert usage is not None
        requests[request_id] = usage
    failed, _ = chat(http, stack, made["key"], model="err-500")  # an upstream error is listed too
    requests[failed] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    rows = stack.usage_rows(list(requests))
    return {
        "key": made["key"],
        "token": made["token"],
        "user": f"spend-user-{tag}",
        "team": team,
        "requests": requests,
        "rows": rows,
    }


def test_spend_logs_list_exactly_the_requests_of_a_key_with_their_tokens(http, stack, spender) -> None:
    resp = spend(http, stack, "/spend/logs", api_key=spender["key"])
    assert resp.status_code == 200, resp.text
    logs = resp.json()
    assert sorted(r["request_id"] for r in logs) == sorted(spender["requests"])
    for log in logs:
        usage, row = spender["requests"][log["request_id"]], spender["rows"][log["request_id"]]
        assert (log["prompt_tokens"], log["completion_tokens"], log["total_tokens"]) == (
            usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"],
        )  # fmt: skip
        assert log["api_key"] == spender["token"] and log["user"] == spender["user"] and log["team_id"] == spender["team"]
        assert log["spend"] == row["cost"] and log["status"] == row["status"] and log["model_group"] == row["model_group"]
        assert log["startTime"] == row["ts"] and log["endTime"] >= log["startTime"]
    assert sorted(r["status"] for r in logs) == ["success"] * 4 + ["upstream_error"]
    starts = [r["startTime"] for r in logs]
    assert starts == sorted(starts, reverse=True)  # the newest first

    by_token = spend(http, stack, "/spend/logs", api_key=spender["token"]).json()
    assert by_token == logs


def test_spend_logs_filter_by_user_team_request_date_and_limit(http, stack, spender) -> None:
    ids = sorted(spender["requests"])

    def listed(**params) -> list[str]:
        resp = spend(http, stack, "/spend/logs", **params)
        assert resp.status_code == 200, resp.text
        return sorted(r["request_id"] for r in resp.json())

    assert listed(user_id=spender["user"]) == ids
    assert listed(team_id=spender["team"]) == ids
    assert listed(request_id=ids[2]) == [ids[2]]
    assert listed(api_key=spender["key"], start_date=today(-1), end_date=today()) == ids
    assert listed(api_key=spender["key"], start_date=today(1)) == []
    assert listed(api_key=spender["key"], end_date=today(-1)) == []
    assert len(listed(team_id=spender["team"], limit=2)) == 2
    assert listed(api_key="sk-no-such-key") == []


def test_the_spend_report_totals_match_the_usage_rows(http, stack, spender) -> None:
    rows = list(spender["rows"].values())
    total = sum(r["cost"] for r in rows)
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    for group_by, field, ident in (
        ("team", "team_id", spender["team"]),
        ("user", "user_id", spender["user"]),
        ("api_key", "api_key", spender["token"]),
    ):
        resp = spend(http, stack, "/global/spend/report", group_by=group_by, start_date=today(), end_date=today())
        assert resp.status_code == 200, resp.text
        entry = next(e for e in resp.json() if e[field] == ident)
        assert entry["total_spend"] == pytest.approx(total, abs=1e-9)
        assert (entry["total_tokens"], entry["requests"]) == (tokens, len(rows))
        assert [m["model"] for m in entry["models"]] and {m["model"] for m in entry["models"]} == {"gpt-4", "err-500"}
        assert sum(m["requests"] for m in entry["models"]) == len(rows)

    by_model = spend(http, stack, "/global/spend/report", group_by="model").json()
    expected = stack.query(
        "SELECT model_group, count() AS n, sum(prompt_tokens + completion_tokens) AS t FROM usage FINAL GROUP BY model_group"
    )
    assert {e["model"]: (e["requests"], e["total_tokens"]) for e in by_model} == {
        r["model_group"]: (r["n"], r["t"]) for r in expected
    }
    default = spend(http, stack, "/global/spend/report").json()
    assert any(e.get("team_id") == spender["team"] for e in default)  # group_by defaults to team


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/spend/logs", {"start_date": "2024-13-01"}, "start_date"),
        ("/spend/logs", {"end_date": "yesterday"}, "end_date"),
        ("/spend/logs", {"start_date": "2025-02-02", "end_date": "2025-02-01"}, "end_date"),
        ("/spend/logs", {"limit": "0"}, "limit"),
        ("/global/spend/report", {"start_date": "20250101"}, "start_date"),
        ("/global/spend/report", {"group_by": "planet"}, "group_by"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(http, stack, path, params, field) -> None:
    resp = spend(http, stack, path, **params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == field


def test_spend_is_for_admins_only(http, stack, spender) -> None:
    for path in ("/spend/logs", "/global/spend/report"):
        # A valid key of a user that is no admin: 403; no key: 401.
        refused = spend(http, stack, path, key=spender["key"])
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied", refused.text
        assert http.get(f"{stack.base_url}{path}").status_code == 401


def test_metering_settles_what_the_key_user_and_team_spent(stack, spender) -> None:
    total = sum(r["cost"] for r in spender["rows"].values())
    keys = [
        ledger_key(LedgerKind.KEY, spender["token"]),
        ledger_key(LedgerKind.USER, spender["user"]),
        ledger_key(LedgerKind.TEAM, spender["team"]),
    ]
    for key in keys:
        settled_ledger(stack, key, total)


def stored_alerts(stack) -> list[dict]:
    """Every alert in the alerts stream (metering keeps them there)."""

    async def read() -> list[dict]:
        nc = await nats.connect(stack.nats_url)
        try:
            subjects = Subjects(stack.prefix)
            sub = await nc.jetstream().subscribe(subjects.alerts_wildcard, stream=subjects.alerts_stream, ordered_consumer=True)
            found = []
            try:
                while True:
                    msg = await sub.next_msg(timeout=1.0)
                    found.append({"subject": msg.subject, **json.loads(msg.data)})
            except nats.errors.TimeoutError:
                return found
        finally:
            await nc.close()

    return asyncio.run(read())


def test_a_budgeted_key_is_settled_exactly_and_alerts_once_past_its_soft_budget(http, stack) -> None:
    made = new_key(http, stack, max_budget=1.0, soft_budget=0.0003, key_alias="soft")
    ids = [chat(http, stack, made["key"], 12)[0] for _ in range(5)]
    rows = stack.usage_rows(ids)
    total = sum(r["cost"] for r in rows.values())
    assert total > 0.0003  # priced (gpt-4o), and past the soft budget
    settled_ledger(stack, ledger_key(LedgerKind.KEY, made["token"]), total)
    alerts = [a for a in stored_alerts(stack) if a["id"] == made["token"]]
    assert len(alerts) == 1
    assert alerts[0]["subject"] == Subjects(stack.prefix).budget_alert("key")
    assert (alerts[0]["kind"], alerts[0]["soft_budget"], alerts[0]["max_budget"]) == ("key", 0.0003, 1.0)
    assert alerts[0]["spent"] >= 0.0003


def test_usage_tail_prints_events_live_and_sql_reads_the_store(http, stack, spender) -> None:
    cli = [sys.executable, "-m", "llmgw_cli"]
    bus = ["--nats-url", stack.nats_url, "--prefix", stack.prefix]
    tail = subprocess.Popen(
        [*cli, "usage", "tail", "-n", "2", *bus], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        eventually_sync(lambda: tail.stderr.readline().startswith("# tailing"), "the tail to subscribe", timeout=15)
        sent = [chat(http, stack, spender["key"])[0] for _ in range(2)]
        out, _ = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["request_id"] for e in events] == sent and all(e["key_hash"] == spender["token"] for e in events)

    query = "SELECT request_id, prompt_tokens FROM usage FINAL WHERE request_id IN {ids:Array(String)} ORDER BY request_id"
    stack.usage_rows(sent)
    done = subprocess.run(
        [*cli, "sql", query, "--param", json.dumps(sent).join(("ids=", "")), "--json", *bus],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["request_id"] for line in done.stdout.splitlines()] == sorted(sent)
    table = subprocess.run([*cli, "sql", "SELECT 1 AS one", *bus], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert table.stdout.split() == ["one", "---", "1", "(1", "row)"]
    bad = subprocess.run([*cli, "sql", "DROP TABLE usage", *bus], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "READONLY" in bad.stderr


def test_500_requests_while_metering_is_down_land_once_each(http, stack) -> None:
    made = new_key(http, stack, key_alias="while-down")
    assert stack.metering.stop() == 0, stack.metering.output()
    assert spend(http, stack, "/spend/logs", api_key=made["key"]).status_code == 503

    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: chat(http, stack, made["key"], 8), range(500)))
    assert all(usage is not None for _, usage in results)
    ids = [request_id for request_id, _ in results]
    assert len(set(ids)) == 500
    sent_in = time.monotonic() - started

    stack.metering = stack._start("metering", "metering")
    counts_sql = "SELECT count() AS rows, uniqExact(request_id) AS ids FROM usage WHERE request_id IN {ids:Array(String)}"
    eventually_sync(
        lambda: stack.query(counts_sql, {"ids": ids}) == [{"rows": 500, "ids": 500}], "500 rows", timeout=90, interval=0.25
    )
    assert stack.query(counts_sql.replace("FROM usage", "FROM usage FINAL"), {"ids": ids}) == [{"rows": 500, "ids": 500}]
    tokens = sum(u["prompt_tokens"] + u["completion_tokens"] for _, u in results)
    logs = spend(http, stack, "/spend/logs", api_key=made["key"], limit=1000).json()
    assert len(logs) == 500 and sum(r["total_tokens"] for r in logs) == tokens

    total = stack.query("SELECT sum(cost) AS c FROM usage FINAL WHERE key_hash = {k:String}", {"k": made["token"]})[0]["c"]
    print(f"500 requests sent in {sent_in:.1f}s")
    settled_ledger(stack, ledger_key(LedgerKind.KEY, made["token"]), total)
