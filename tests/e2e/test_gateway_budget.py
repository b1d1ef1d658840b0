"""The whole gateway's budget (`litellm_settings.max_budget` and `budget_duration`, as LiteLLM's
proxy config sets it): all spend, of every key and of the master key, counts against it; once it is
spent every request that costs anything is refused, naming the gateway's budget. Its own stack:
the budget bounds everything that runs on it."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, Stack, write_config

pytestmark = pytest.mark.e2e

BUDGET = 0.0004
HELLO = [{"role": "user", "content": "Hello, how are you?"}]


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-budget")
    config = write_config(root / "base.yaml", upstream.base_url).read_text()
    config += f"litellm_settings:\n  max_budget: {BUDGET}\n  budget_duration: 30d\n"
    s = Stack(root, nats_server.url, "e2egwbudget", upstream, {}, config=config).start()
    yield s
    s.stop()


def ask(client: openai.OpenAI) -> str:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=HELLO, max_tokens=3)
    raw.parse()
    return raw.headers["x-request-id"]


def test_the_gateway_wide_budget_refuses_every_caller_once_spent(stack):
    resp = httpx.post(
        f"{stack.base_url}/key/generate",
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        json={"models": ["gpt-4"]},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    made = resp.json()
    master, key = stack.client(), openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=made["key"], max_retries=0)
    served: list[str] = []
    refusal = None
    for turn in range(60):
        try:
            served.append(ask(master if turn % 2 else key))  # both callers spend the one budget
        except openai.RateLimitError as exc:
            refusal = exc.response.json()["error"]
            break
    assert refusal is not None, "the gateway's budget refused no request"
    assert len(served) >= 2, "the budget served requests before it was spent"
    assert refusal["code"] == "budget_exceeded", refusal
    message = refusal["message"]
    assert message.startswith("Budget exceeded for the gateway (litellm_settings.max_budget): max_budget $0.0004, "), message
    assert "worst case" in message, message

    # Every caller is refused now, the master key and a key without a budget of its own alike.
    for client in (master, key):
        with pytest.raises(openai.RateLimitError):
            ask(client)
    rows = stack.usage_rows(served)
    assert sum(r["cost"] for r in rows.values()) <= BUDGET + 1e-12
    assert MASTER_KEY not in stack.logs() and made["key"] not in stack.logs()
