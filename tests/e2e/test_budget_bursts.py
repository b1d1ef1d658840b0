"""A burst is admitted as far as the budget really allows, across edges: 100 concurrent requests
against a budget that pays for 10, spread over three edge processes on one bus. Requests that do
not fit only because of the reservations of requests in flight wait for those to settle
(`LLMGW_BUDGET_WAIT_SECONDS`), so about as many are served as the budget pays for, and spend never
passes it.

The `gpt-4-slow` group is priced as `gpt-4o` ($2.50 / $10 per 1M tokens); the fake OpenAI upstream
(bench/fake_openai.py) answers "Hello there" (3 prompt tokens) with `max_tokens` 100 in 100 tokens, after 5 s:
3 x 2.5e-6 + 100 x 1e-5 = 0.0010075 USD. Its worst case (the body's ~95 bytes as prompt tokens) is
about 1.23 times that, so without waiting eight requests fit at once and the rest of the burst is
refused or cut short while they run.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import msgspec
import nats
import pytest

from llmgw.contracts import BudgetLedger, LedgerKind, Subjects, ledger_key
from tests.e2e.stack import MASTER_KEY, Stack, write_config
from tests.procs import free_port, wait_ready
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "Hello there"}]
ONE_REQUEST = 3 * 2.5e-6 + 100 * 1e-5
BUDGET = 10 * ONE_REQUEST
MODEL = "gpt-4-slow"


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    """The e2e stack with one more model group: `gpt-4o`'s prices on an upstream that takes 5 s
    to answer, so that a burst's requests are all in flight together."""
    root = tmp_path_factory.mktemp("stack")
    base = write_config(root / "base.yaml", upstream.base_url).read_text()
    slow = [
        f"  - model_name: {MODEL}",
        "    params:",
        "      model: openai/fake-slow-5000",
        f"      api_base: {upstream.base_url}",
        "      api_key: os.environ/E2E_UPSTREAM_KEY",
        "      input_cost_per_token: 2.5e-06",
        "      output_cost_per_token: 1.0e-05",
    ]
    config = base.replace("general_settings:", "\n".join(slow) + "\ngeneral_settings:")
    # Requests wait for room up to 40 s, within their deadline of 60 s.
    env = {"LLMGW_BUDGET_WAIT_SECONDS": os.environ.get("LLMGW_BUDGET_WAIT_SECONDS", "40"), "LLMGW_REQUEST_TIMEOUT": "60"}
    s = Stack(root, nats_server.url, "e2ebudgetbursts", upstream, env, config=config).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def edge_urls(stack) -> list[str]:
    """The module's edge and two more, each its own process on the same bus."""
    urls = [stack.base_url]
    for n in (1, 2):
        port = free_port()
        stack._start(f"edge-{n}", "gateway", {"LLMGW_PORT": str(port)})
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls[1:]:
        wait_ready(url, 45)
    return urls


def read_ledger(stack, token: str) -> BudgetLedger:
    """The key's ledger as the budgets bucket holds it."""

    async def read() -> BudgetLedger:
        nc = await nats.connect(stack.nats_url)
        try:
            kv = await nc.jetstream().key_value(Subjects(stack.prefix).budgets_bucket)
            entry = await kv.get(ledger_key(LedgerKind.KEY, token))
            return msgspec.json.decode(entry.value or b"", type=BudgetLedger)
        finally:
            await nc.close()

    return asyncio.run(read())


def new_key(base_url: str, **params) -> dict:
    resp = httpx.post(f"{base_url}/key/generate", json=params, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_burst_over_three_edges_is_admitted_as_far_as_the_budget_pays(stack, edge_urls) -> None:
    key = new_key(stack.base_url, max_budget=BUDGET, models=[MODEL])
    token = key["token"]

    async def call(client: httpx.AsyncClient, n: int) -> tuple[int, str, dict]:
        resp = await client.post(
            f"{edge_urls[n % 3]}/v1/chat/completions",
            json={"model": MODEL, "messages": HELLO, "max_tokens": 100},
            headers={"Authorization": f"Bearer {key['key']}"},
        )
        return resp.status_code, resp.headers["x-request-id"], resp.json()

    async def burst() -> list[tuple[int, str, dict]]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            return await asyncio.gather(*(call(client, n) for n in range(100)))

    outcomes = asyncio.run(burst())
    served = [rid for status, rid, _ in outcomes if status == 200]
    refused = [(rid, body) for status, rid, body in outcomes if status != 200]
    for _, body in refused:  # every other request is a clean budget refusal
        assert body["error"]["code"] == "budget_exceeded", body
    assert len(served) >= 9, f"{len(served)} of 100 admitted"
    assert len(served) + len(refused) == 100

    # Exactly one usage row for each request, served or refused; together they cost no more than the budget.
    every = [rid for _, rid, _ in outcomes]
    rows = stack.usage_rows(every, timeout=30)
    assert {rid: rows[rid]["status"] == "refused" for rid in every} == {rid: rid not in served for rid in every}
    copies = stack.query(
        "SELECT request_id, count() AS n FROM usage WHERE request_id IN {ids:Array(String)} GROUP BY request_id HAVING n > 1",
        {"ids": every},
    )
    assert copies == []
    costs = [float(rows[rid]["cost"]) for rid in served]
    assert sum(costs) <= BUDGET + 1e-12
    assert all(0 < c <= ONE_REQUEST + 1e-12 for c in costs)
    # Whole answers while the budget's unspent rest holds a worst case: nine (the ninth waits for
    # the first eight to settle); those admitted after are held to what is left (cut short, the
    # worker counting the prompt's bytes as tokens). Without the wait the ninth is cut too.
    assert sum(1 for c in costs if c == pytest.approx(ONE_REQUEST, abs=1e-12)) >= 9
    assert all(float(rows[rid]["cost"]) == 0 for rid, _ in refused)

    # The key's ledger ends with what the rows cost, and holds nothing for the burst any more.
    def settled() -> dict | None:
        info = httpx.get(
            f"{stack.base_url}/key/info", params={"key": key["key"]}, headers={"Authorization": f"Bearer {MASTER_KEY}"}
        ).json()["info"]
        return info if info["spend"] >= sum(costs) - 1e-12 else None

    info = eventually_sync(settled, "the key's spend", timeout=20)
    assert info["spend"] == pytest.approx(sum(costs), abs=1e-12) and info["spend"] <= BUDGET + 1e-12
    ledger = eventually_sync(lambda: (led := read_ledger(stack, token)).reservations == {} and led, "no reservation left")
    assert ledger.spent == pytest.approx(sum(costs), abs=1e-12)
