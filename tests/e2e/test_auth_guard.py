"""Repeated failed authentication from one address is slowed, then refused (429), and counted in
the edge's log; another address is not affected."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import log_events
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

SLOW_AFTER, REFUSE_AFTER = 3, 6


@pytest.fixture
def stack(nats_server, upstream, tmp_path, bus_prefix):
    env = {"LLMGW_AUTH_FAILURES_SLOW_AFTER": str(SLOW_AFTER), "LLMGW_AUTH_FAILURES_REFUSE_AFTER": str(REFUSE_AFTER)}
    s = Stack(tmp_path, nats_server.url, bus_prefix, upstream, env).start()
    yield s
    s.stop()


def client_from(address: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x.y.z is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def chat(client: httpx.Client, stack: Stack, key: str) -> httpx.Response:
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2}
    return client.post(f"{stack.base_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


def test_repeated_failures_are_slowed_then_refused_per_address(stack):
    with client_from("127.0.0.2") as guesser, client_from("127.0.0.3") as other:
        statuses = [chat(guesser, stack, f"sk-guess-{i}").status_code for i in range(REFUSE_AFTER)]
        assert statuses == [401] * REFUSE_AFTER
        # Refused before the key is looked at: the right key from that address waits too.
        refused = chat(guesser, stack, MASTER_KEY)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # Admin routes count and refuse alike.
        admin = guesser.get(f"{stack.base_url}/key/list", headers={"Authorization": "Bearer sk-nope"})
        assert admin.status_code == 429
        # Another address is served.
        assert chat(other, stack, MASTER_KEY).status_code == 200

    failures = eventually_sync(
        lambda: (
            (found := log_events(stack.edge.output(), "auth_failed", address="127.0.0.2"))
            and len(found) == REFUSE_AFTER
            and found
        ),
        "the failures in the edge's log",
        10,
    )
    assert [f["failures"] for f in failures] == list(range(1, REFUSE_AFTER + 1))
    delays = [f["delay_s"] for f in failures]
    assert delays[:SLOW_AFTER] == [0.0] * SLOW_AFTER
    assert all(d > 0 for d in delays[SLOW_AFTER:]) and delays[SLOW_AFTER:] == sorted(delays[SLOW_AFTER:])
    assert len(log_events(stack.edge.output(), "auth_refused", address="127.0.0.2")) == 2
    # Counted as auth refusals: the 6 failures (chat, through the pipeline) and the 2 the guard
    # refused before the route's handler ran (counted under their path).
    page = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(httpx.get(f"{stack.base_url}/metrics", timeout=10).text)
        for s in family.samples
    }
    assert page[("llmgw_refusals_total", (("reason", "auth"),))] == REFUSE_AFTER + 2
    for route in ("/v1/chat/completions", "/key/list"):
        labels = (("model_group", ""), ("provider", ""), ("route", route), ("status_class", "4xx"))
        assert page[("llmgw_requests_total", labels)] == 1
    assert not log_events(stack.edge.output(), "auth_failed", address="127.0.0.3")


def test_a_deleted_key_is_not_a_guess(stack):
    """A client that keeps sending its deleted key is told so every time, never throttled."""
    admin = {"Authorization": f"Bearer {MASTER_KEY}"}
    key = httpx.post(f"{stack.base_url}/key/generate", json={}, headers=admin, timeout=10).json()["key"]
    assert httpx.post(f"{stack.base_url}/key/delete", json={"keys": [key]}, headers=admin, timeout=10).status_code == 200
    with client_from("127.0.0.4") as client:
        answers = [chat(client, stack, key) for _ in range(REFUSE_AFTER * 2)]
    assert [a.status_code for a in answers] == [401] * (REFUSE_AFTER * 2)
    assert all("deleted" in a.json()["error"]["message"] for a in answers)
    assert not log_events(stack.edge.output(), "auth_failed", address="127.0.0.4")
