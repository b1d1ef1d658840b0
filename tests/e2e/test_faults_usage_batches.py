"""A worker killed (SIGKILL) while it serves 40 requests at once, their usage events batched: after
redelivery every request has exactly one usage row, and the key's ledger spend is the sum of them.

At the kill some of w0's requests wait for the upstream, some for their batch's ack, some are
acked; those not acked are redelivered to w1, whose events then repeat requests metering may have
stored already (another batch, another message id): the store's request_id check and the ledgers'
`applied_seq` keep each one counted once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.e2e.test_faults_support import HELLO, queues_empty, start_named_worker
from tests.procs import FakeUpstream, log_events
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

CONCURRENCY = 40
PER_CLIENT = 8  # requests each of the 40 clients sends, back to back
# "Hello there" (3 prompt tokens) answered with 10 tokens, at the group's prices
ONE_REQUEST = 3 * 2.5e-6 + 10 * 1e-5


def config(upstream: FakeUpstream) -> str:
    return "\n".join(
        [
            "model_list:",
            "  - model_name: paced",
            "    params:",
            "      model: openai/fake-slow-150",  # long enough that the kill finds requests at the upstream
            f"      api_base: {upstream.base_url}",
            "      api_key: os.environ/E2E_UPSTREAM_KEY",
            "      input_cost_per_token: 2.5e-06",
            "      output_cost_per_token: 1.0e-05",
            "general_settings:",
            "  master_key: os.environ/E2E_MASTER_KEY",
        ]
    )


@pytest.fixture
def stack(nats_server, upstream, tmp_path, bus_prefix):
    """w0 and w1 serve together; a request not acked (or touched) for 2 s is given to another worker."""
    s = Stack(
        tmp_path,
        nats_server.url,
        bus_prefix,
        upstream,
        {"LLMGW_WORKER_ID": "w0", "LLMGW_ACK_WAIT": "2", "LLMGW_WORKER_CONCURRENCY": "64"},
        config=config(upstream),
    ).start()
    start_named_worker(s, "w1")
    yield s
    s.stop()


def admin(stack: Stack, method: str, path: str, **kwargs) -> dict:
    response = httpx.request(method, f"{stack.base_url}{path}", headers={"Authorization": f"Bearer {MASTER_KEY}"}, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def rows_by_request(stack: Stack, token: str) -> dict[str, tuple[int, float, int]]:
    """request_id -> (rows, cost, highest attempt) of the key's requests, counted before
    ReplacingMergeTree merges (a double would show)."""
    found = stack.query(
        "SELECT request_id, count() AS n, sum(cost) AS cost, max(attempt) AS attempt FROM usage"
        " WHERE key_hash = {k:String} GROUP BY request_id",
        {"k": token},
    )
    return {r["request_id"]: (int(r["n"]), float(r["cost"]), int(r["attempt"])) for r in found}


def test_a_worker_killed_at_concurrency_leaves_one_row_per_request_and_exact_spend(stack):
    key = admin(stack, "POST", "/key/generate", json={"max_budget": 100.0})["key"]
    token = admin(stack, "GET", "/key/info", params={"key": key})["info"]["token"]
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0, timeout=60)
    answered: list[str] = []
    lock = threading.Lock()

    def one_client(_: int) -> None:
        for _ in range(PER_CLIENT):
            raw = client.chat.completions.with_raw_response.create(model="paced", messages=HELLO, max_tokens=10)
            assert raw.parse().usage.completion_tokens == 10
            with lock:
                answered.append(raw.headers["x-request-id"])

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        clients = [pool.submit(one_client, i) for i in range(CONCURRENCY)]
        eventually_sync(lambda: len(rows_by_request(stack, token)) >= 100, "a third of the usage rows", timeout=60)
        stack.workers[0].kill()
        for done in clients:
            done.result(timeout=120)

    assert len(answered) == len(set(answered)) == CONCURRENCY * PER_CLIENT
    # w0's unacked requests are served again by w1 (their answers go nowhere: the clients have one).
    eventually_sync(
        lambda: asyncio.run(queues_empty(stack.nats_url, stack.prefix)), "every redelivery served and metered", timeout=60
    )
    rows = rows_by_request(stack, token)
    assert set(rows) == set(answered)
    assert {n for n, _, _ in rows.values()} == {1}  # exactly one row each
    # (The premise: the kill caught requests in flight, which w1 served again.)
    assert [e for e in log_events(stack.workers[1].output(), "request") if e["attempt"] == 2]
    total = sum(cost for _, cost, _ in rows.values())
    assert total == pytest.approx(len(answered) * ONE_REQUEST, abs=1e-12)

    def settled_spend() -> float | None:
        spend = admin(stack, "GET", "/key/info", params={"key": key})["info"]["spend"]
        return spend if spend == pytest.approx(total, abs=1e-12) else None

    # The edge reads the ledger from its watch-fed copy: it may show the last write a moment late.
    eventually_sync(settled_spend, "the key's ledger to show every row", timeout=30)
