"""Every outcome of a request ends its lease exactly once: the budget reservation is settled (or
released) and the rate-limit slot is freed, on a chat route and on a native route alike.

The key has a budget (so each request reserves its worst case) and a parallel-request limit (so
each request holds a slot in the ratelimits bucket). After each outcome the test reads the key's
budget ledger and rate window from KV, and the edge's log line for the request, which names how
the lease ended: `settled` (the worker's last reply said what it cost), `released` (it never
reached a worker) or `left_to_metering` (no last reply reached the edge: the client went away or
the deadline passed; the worker's usage event settles the reservation when it lands).
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import httpx
import msgspec
import nats
import pytest
from nats.js.errors import KeyNotFoundError

from llmgw.contracts import BudgetLedger, LedgerKind, RateWindow, Subjects, kv_key, ledger_key
from tests.e2e.stack import MASTER_KEY, Stack
from tests.e2e.test_faults_support import start_named_worker
from tests.procs import FakeUpstream, log_events
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

API_VERSION = "2024-10-21"
HELLO = [{"role": "user", "content": "Hello there"}]
# fake model -> what it does (bench/fake_openai.py): each is a chat group and an Azure deployment
FAKES = {
    "ok": "gpt-4o",
    "err": "fake-error-400",
    "drip": "fake-chunk-delay-200",
    "late": "fake-slow-20000",  # past every deadline below
    "kill": "fake-slow-4000",  # long enough to start a second worker and kill the one calling it
}
REQUEST_TIMEOUT = 10  # seconds: the edge's deadline (native calls have no per-request timeout)


def config(upstream: FakeUpstream) -> str:
    lines = ["model_list:"]
    for name, fake in FAKES.items():
        for group, model, base in (
            (f"chat-{name}", f"openai/{fake}", upstream.base_url),
            (f"az-{name}", f"azure/{fake}", upstream.root_url),
        ):
            lines += [
                f"  - model_name: {group}",
                "    params:",
                f"      model: {model}",
                f"      api_base: {base}",
                "      api_key: os.environ/E2E_UPSTREAM_KEY",
                f"      api_version: {API_VERSION}",
                "      input_cost_per_token: 1.0e-06",
                "      output_cost_per_token: 2.0e-06",
            ]
    lines += ["general_settings:", "  master_key: os.environ/E2E_MASTER_KEY"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    env = {"LLMGW_WORKER_ID": "w0", "LLMGW_ACK_WAIT": "1.5", "LLMGW_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT)}
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2eleases", upstream, env, config=config(upstream)).start()
    yield s
    s.stop()


class Key:
    def __init__(self, stack: Stack) -> None:
        resp = httpx.post(
            f"{stack.base_url}/key/generate",
            json={"max_budget": 5.0, "max_parallel_requests": 4},
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        self.key, self.token = resp.json()["key"], resp.json()["token"]
        self.stack = stack

    def _read(self, bucket: str, key: str, kind: type):
        async def read():
            nc = await nats.connect(self.stack.nats_url)
            try:
                kv = await nc.jetstream().key_value(bucket)
                try:
                    return msgspec.json.decode((await kv.get(key)).value, type=kind)
                except KeyNotFoundError:
                    return None
            finally:
                await nc.close()

        return asyncio.run(read())

    def ledger(self) -> BudgetLedger:
        led = self._read(Subjects(self.stack.prefix).budgets_bucket, ledger_key(LedgerKind.KEY, self.token), BudgetLedger)
        return led or BudgetLedger()

    def window(self) -> RateWindow:
        """The key's rate window: it exists once the key's first request took a parallel slot."""
        win = self._read(Subjects(self.stack.prefix).ratelimits_bucket, f"key.{kv_key(self.token)}", RateWindow)
        assert win is not None, "the key has no rate window"
        return win


def send(stack: Stack, key: Key, route: str, name: str, timeout: float | None = None) -> httpx.Response:
    """A whole answer as the client gets it (`timeout`: the chat body's own, in seconds)."""
    body: dict = {"messages": HELLO, "max_tokens": 8}
    if route == "chat":
        body["model"] = f"chat-{name}"
        if timeout is not None:
            body["timeout"] = timeout
        url, headers = f"{stack.base_url}/v1/chat/completions", {"Authorization": f"Bearer {key.key}"}
    else:
        url = f"{stack.base_url}/azure/openai/deployments/{FAKES[name]}/chat/completions?api-version={API_VERSION}"
        headers = {"api-key": key.key}
    return httpx.post(url, json=body, headers=headers, timeout=60)


def lease_of(stack: Stack, request_id: str) -> str:
    lines = eventually_sync(
        lambda: log_events(stack.edge.output(), "request", request_id=request_id), "the request's log line", 10
    )
    assert len(lines) == 1, lines  # one canonical line, one end
    return lines[0]["lease"]


def row_cost(stack: Stack, request_id: str) -> float:
    return stack.usage_rows([request_id])[request_id]["cost"]


def assert_ended(key: Key, request_id: str, spent_before: float) -> None:
    """No reservation of the request left, its slot free, and its cost counted once in spend."""
    cost = row_cost(key.stack, request_id)

    def settled() -> BudgetLedger | None:
        led = key.ledger()
        return led if request_id not in led.reservations and led.spent == pytest.approx(spent_before + cost, abs=1e-12) else None

    eventually_sync(settled, "metering to settle the request's cost into the ledger", 20)
    assert request_id not in key.window().slots


ROUTES = ["chat", "native"]


@pytest.mark.parametrize("route", ROUTES)
def test_an_answer_settles_its_lease(stack, route):
    key = Key(stack)
    resp = send(stack, key, route, "ok")
    assert resp.status_code == 200, resp.text
    request_id = resp.headers["x-request-id"]
    assert lease_of(stack, request_id) == "settled"
    assert row_cost(stack, request_id) > 0
    assert_ended(key, request_id, 0.0)


@pytest.mark.parametrize("route", ROUTES)
def test_an_upstream_error_settles_its_lease(stack, route):
    key = Key(stack)
    resp = send(stack, key, route, "err")
    assert resp.status_code == 400, resp.text
    request_id = resp.headers["x-request-id"]
    assert lease_of(stack, request_id) == "settled"
    assert_ended(key, request_id, 0.0)


@pytest.mark.parametrize("route", ROUTES)
def test_a_client_gone_mid_stream_frees_its_slot_and_leaves_the_cost_to_metering(stack, route):
    key = Key(stack)
    body: dict = {"messages": HELLO, "max_tokens": 30, "stream": True}
    if route == "chat":
        url, headers = f"{stack.base_url}/v1/chat/completions", {"Authorization": f"Bearer {key.key}"}
        body["model"] = "chat-drip"
    else:
        url = f"{stack.base_url}/azure/openai/deployments/{FAKES['drip']}/chat/completions?api-version={API_VERSION}"
        headers = {"api-key": key.key}
    with httpx.Client(timeout=30) as client, client.stream("POST", url, json=body, headers=headers) as resp:
        assert resp.status_code == 200
        request_id = resp.headers["x-request-id"]
        lines = resp.iter_lines()
        seen = [line for line in (next(lines), next(lines), next(lines)) if line]
        assert seen  # the stream had started when the client went away
    assert lease_of(stack, request_id) == "left_to_metering"
    eventually_sync(lambda: request_id not in key.window().slots, "the slot to be freed", 10)
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["http_status"]) == ("cancelled", 499)
    assert_ended(key, request_id, 0.0)


@pytest.mark.parametrize("route", ROUTES)
def test_a_deadline_frees_the_slot_and_keeps_the_reservation_until_metering_settles_it(stack, route):
    key = Key(stack)
    resp = send(stack, key, route, "late", timeout=1)
    assert resp.status_code == 504, resp.text
    request_id = resp.headers["x-request-id"]
    # The edge did not give the reservation back: a worker had the request, and what it cost is
    # known only from the worker's usage event, which metering settles.
    assert lease_of(stack, request_id) == "left_to_metering"
    assert request_id not in key.window().slots
    row = stack.usage_rows([request_id])[request_id]
    assert row["http_status"] == 504
    assert_ended(key, request_id, 0.0)


@pytest.mark.parametrize("route", ROUTES)
def test_a_worker_killed_mid_request_is_answered_and_settled_once(stack, route):
    key = Key(stack)
    worker = stack.workers[-1]
    calls = stack.upstream.stats()["by_model"].get(FAKES["kill"], 0)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(send, stack, key, route, "kill")
        eventually_sync(lambda: stack.upstream.stats()["by_model"].get(FAKES["kill"], 0) > calls, "the upstream call", 20)
        start_named_worker(stack, f"w{len(stack.workers)}")
        assert not answer.done()
        worker.kill()
        resp = answer.result(timeout=60)
    assert resp.status_code == 200, resp.text
    request_id = resp.headers["x-request-id"]
    assert lease_of(stack, request_id) == "settled"
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["attempt"]) == ("success", 2)
    assert_ended(key, request_id, 0.0)
