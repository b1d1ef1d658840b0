"""Request priority: when the workers are saturated, an interactive key's requests are served
before a batch key's requests that were queued earlier."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    # One worker with two slots, so a handful of slow requests saturates it.
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2eprio", upstream, {"LLMGW_WORKER_CONCURRENCY": "2"})
    s.start()
    yield s
    s.stop()


def new_key(stack: Stack, **params) -> str:
    response = httpx.post(
        f"{stack.base_url}/key/generate", headers={"authorization": f"Bearer {MASTER_KEY}"}, json=params, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["key"]


def test_priority_is_a_key_setting_shown_by_key_info(stack: Stack) -> None:
    key = new_key(stack, priority="batch")
    info = httpx.get(
        f"{stack.base_url}/key/info", params={"key": key}, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10
    )
    assert info.json()["info"]["priority"] == "batch"
    bad = httpx.post(
        f"{stack.base_url}/key/generate",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"priority": "urgent"},
        timeout=10,
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "priority"


def test_interactive_requests_overtake_queued_batch_requests(stack: Stack) -> None:
    batch_key = new_key(stack, priority="batch")
    interactive_key = new_key(stack)
    finished: list[str] = []
    lock = threading.Lock()
    statuses: list[int] = []

    def call(key: str, label: str) -> None:
        response = httpx.post(
            f"{stack.base_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "slow", "messages": HELLO, "max_tokens": 3},
            timeout=60,
        )
        with lock:
            statuses.append(response.status_code)
            finished.append(label)

    before = stack.upstream.stats()["by_model"].get("fake-slow-400", 0)
    threads = [threading.Thread(target=call, args=(batch_key, f"batch-{i}")) for i in range(8)]
    for t in threads:
        t.start()
    # The worker is busy with batch work (two slots), the rest of the batch queue waits.
    eventually_sync(
        lambda: stack.upstream.stats()["by_model"].get("fake-slow-400", 0) >= before + 2, "batch work to start", timeout=20
    )
    interactive = [threading.Thread(target=call, args=(interactive_key, f"interactive-{i}")) for i in range(2)]
    for t in interactive:
        t.start()
    for t in threads + interactive:
        t.join(60)
    assert statuses == [200] * 10
    # Both interactive requests finished before the last batch requests queued ahead of them.
    positions = [finished.index(f"interactive-{i}") for i in range(2)]
    assert max(positions) < len(finished) - 2, finished
