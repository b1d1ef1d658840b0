"""Workers scale out, and a worker's death loses no queued request."""

from __future__ import annotations

import concurrent.futures

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import component, free_port, log_events
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def small_stack(nats_server, upstream, tmp_path, bus_prefix):
    """Workers that take two requests at a time and are redelivered from quickly when they die."""
    s = Stack(
        tmp_path,
        nats_server.url,
        bus_prefix,
        upstream,
        {"LLMGW_WORKER_CONCURRENCY": "2", "LLMGW_ACK_WAIT": "2"},
    ).start()
    yield s
    s.stop()


def _call(stack: Stack, model: str) -> str:
    client = stack.client(timeout=60)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=HELLO, max_tokens=4)
    assert raw.parse().choices[0].message.content == "w0 w1 w2 w3"
    return raw.headers["x-request-id"]


def test_two_workers_share_the_load(small_stack):
    small_stack.start_worker()
    eventually_sync(lambda: small_stack.workers[1].output().count("worker_started"), "second worker", timeout=20)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: _call(small_stack, "slow"), range(8)))
    rows = small_stack.usage_rows(ids)
    assert len({r["worker_id"] for r in rows.values()}) == 2


def test_killing_a_worker_loses_no_queued_request(small_stack, upstream):
    small_stack.start_worker()
    eventually_sync(lambda: small_stack.workers[1].output().count("worker_started"), "second worker", timeout=20)
    victim = small_stack.workers[0]
    n = 12  # 4 in flight (2 per worker), the rest queued in JetStream
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(_call, small_stack, "slow") for _ in range(n)]
        eventually_sync(lambda: log_events(victim.output(), "request") or None, "the victim to serve a request", timeout=20)
        victim.kill()
        ids = [f.result(timeout=60) for f in futures]
    assert len(set(ids)) == n  # every client got its answer
    rows = small_stack.usage_rows(ids)
    assert len(rows) == n
    assert all(r["status"] == "success" and r["completion_tokens"] == 4 for r in rows.values())


def test_no_worker_before_the_deadline_is_504(nats_server, tmp_path, bus_prefix):
    port = free_port()
    (tmp_path / "config.yaml").write_text(
        "model_list:\n  - model_name: lonely\n    params:\n      model: openai/gpt-4o\n"
        "      api_base: http://127.0.0.1:9/v1\n      api_key: sk-x\n"
    )
    env = {
        "LLMGW_CONFIG": str(tmp_path / "config.yaml"),
        "LLMGW_NATS_URL": nats_server.url,
        "LLMGW_BUS_PREFIX": bus_prefix,
        "LLMGW_PORT": str(port),
        "LLMGW_HOST": "127.0.0.1",
        "LLMGW_MASTER_KEY": MASTER_KEY,
        "LLMGW_REQUEST_TIMEOUT": "1.5",
        "PATH": "/usr/bin:/bin",
    }
    edge = component("edge", "gateway", env, tmp_path).start()
    try:
        base = f"http://127.0.0.1:{port}"
        eventually_sync(lambda: httpx.get(f"{base}/health/live", timeout=1).status_code == 200, "edge live", timeout=30)
        ready = httpx.get(f"{base}/health/ready", timeout=5)
        assert ready.status_code == 503 and ready.json()["checks"]["providers_without_workers"] == ["openai"]
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(model="lonely", messages=HELLO)
        assert err.value.status_code == 504 and err.value.code == "timeout"
    finally:
        edge.stop()
