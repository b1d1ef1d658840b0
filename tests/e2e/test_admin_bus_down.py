"""An admin write while the bus cannot take it (nats-server down, or a KV bucket electing its
leader after a cluster node died) is a clean, retryable 503, not an internal error."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import NatsServer, free_port
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}


def generate(stack: Stack) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/key/generate", json={"models": ["gpt-4"]}, headers=ADMIN, timeout=30)


def test_a_key_generated_while_nats_is_down_is_refused_with_a_503_to_retry(upstream, tmp_path):
    port, store, logs = free_port(), tmp_path / "nats-store", tmp_path / "nats-logs"
    logs.mkdir()
    (tmp_path / "stack").mkdir()
    servers = [NatsServer(store_dir=store, log_dir=logs, port=port).start()]
    stack = Stack(tmp_path / "stack", servers[0].url, "adminbusdown", upstream, {}).start()
    try:
        assert generate(stack).status_code == 200
        servers[0].stop()
        refused = generate(stack)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.json() == {
            "error": {
                "message": "the gateway's message bus is unavailable; retry shortly",
                "type": "service_unavailable_error",
                "param": None,
                "code": "service_unavailable",
            }
        }
        servers.append(NatsServer(store_dir=store, log_dir=logs, port=port).start())
        eventually_sync(lambda: generate(stack).status_code == 200, "a key generated once the bus is back", timeout=60)
    finally:
        stack.stop()
        for server in servers:
            server.stop()
