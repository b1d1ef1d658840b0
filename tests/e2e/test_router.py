"""The router through the whole gateway: a failing deployment's traffic moves to a healthy one
with no error the client sees, fallbacks to other groups, cooldown and its expiry, retries, and
seed 004's one-server-per-model-path layout."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hello there"}]
COOLDOWN = 6.0  # long enough for the checks below to run inside it on a loaded machine


def router_config(base: str, root: str) -> str:
    def deployment(name: str, upstream: str, dep_id: str, api_base: str = base) -> str:
        return (
            f"  - model_name: {name}\n    params:\n      model: openai/{upstream}\n      api_base: {api_base}\n"
            f"      api_key: os.environ/E2E_UPSTREAM_KEY\n    model_info:\n      id: {dep_id}\n"
        )

    return (
        "model_list:\n"
        + deployment("mixed", "fake-error-503", "mixed-broken")
        + deployment("mixed", "gpt-4o", "mixed-healthy")
        + deployment("primary", "fake-error-500", "primary-only")
        + deployment("backup", "gpt-4o-mini", "backup-1")
        + deployment("small", "fake-context-length", "small-1")
        + deployment("large", "gpt-4o", "large-1")
        + deployment("flaky", "fake-error-429", "flaky-1")
        + deployment("srv/*", "*", "model-servers", api_base=f"{root}/{{model}}/v1")
        + "router_settings:\n"
        "  routing_strategy: simple-shuffle\n"
        "  allowed_fails: 1\n"
        f"  cooldown_time: {COOLDOWN}\n"
        "  retry_after: 0.05\n"
        '  fallbacks: [{"primary": ["backup"]}]\n'
        '  context_window_fallbacks: [{"small": ["large"]}]\n'
        "general_settings:\n  master_key: os.environ/E2E_MASTER_KEY\n"
    )


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    config = router_config(upstream.base_url, upstream.root_url)
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2erouter", upstream, {}, config=config).start()
    yield s
    s.stop()


def chat(stack: Stack, model: str, **kwargs):
    raw = stack.client().chat.completions.with_raw_response.create(model=model, messages=HELLO, max_tokens=5, **kwargs)
    return raw.headers["x-request-id"], raw.parse()


def calls(stack: Stack, model: str) -> int:
    return stack.upstream.stats()["by_model"].get(model, 0)


def test_a_failing_deployment_is_routed_around_then_cooled_down_then_tried_again(stack: Stack) -> None:
    ids = [chat(stack, "mixed")[0] for _ in range(12)]  # every one answered: no client-visible error
    rows = stack.usage_rows(ids)
    assert {rows[i]["deployment_id"] for i in ids} == {"mixed-healthy"}
    assert all(rows[i]["status"] == "success" for i in ids)
    retried = [i for i in ids if rows[i]["upstream_attempts"] == 2]
    assert retried, "the shuffle never picked the broken deployment first"
    # allowed_fails=1: the second failure cools it down, after which the broken one is not called.
    broken_calls = calls(stack, "fake-error-503")
    assert broken_calls <= 2
    more = [chat(stack, "mixed")[0] for _ in range(6)]
    assert calls(stack, "fake-error-503") == broken_calls
    assert all(r["upstream_attempts"] == 1 for r in stack.usage_rows(more).values())
    # After the cooldown it is tried again (and fails over again).
    time.sleep(COOLDOWN + 0.2)  # the cooldown itself is the thing under test
    eventually_sync(
        lambda: chat(stack, "mixed") and calls(stack, "fake-error-503") > broken_calls,
        "the broken deployment to be tried again",
        timeout=20,
    )


def test_a_group_that_fails_falls_back_to_its_fallback_group(stack: Stack) -> None:
    request_id, completion = chat(stack, "primary")
    assert completion.choices[0].message.content
    row = stack.usage_rows([request_id])[request_id]
    assert row["deployment_id"] == "backup-1" and row["model_group"] == "primary"
    assert row["upstream_model"] == "gpt-4o-mini" and row["upstream_attempts"] == 2 and row["status"] == "success"


def test_a_streamed_request_falls_back_before_its_first_chunk(stack: Stack) -> None:
    raw = stack.client().chat.completions.with_raw_response.create(model="primary", messages=HELLO, max_tokens=4, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert row["deployment_id"] == "backup-1" and row["upstream_attempts"] == 2


def test_a_prompt_too_long_goes_to_the_context_window_fallback(stack: Stack) -> None:
    request_id, completion = chat(stack, "small")
    assert completion.choices[0].message.content
    row = stack.usage_rows([request_id])[request_id]
    assert row["deployment_id"] == "large-1" and row["upstream_attempts"] == 2


def test_a_rate_limited_deployment_without_alternatives_answers_429(stack: Stack) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        chat(stack, "flaky")
    assert err.value.status_code == 429


def test_seed_004_one_api_base_template_serves_each_model_by_path(stack: Stack) -> None:
    before = stack.upstream.stats()["by_path"]
    for model in ("llama-3-8b", "mistral-7b", "llama-3-8b"):
        request_id, completion = chat(stack, f"srv/{model}")
        assert completion.choices[0].message.content
        row = stack.usage_rows([request_id])[request_id]
        assert row["upstream_model"] == model and row["deployment_id"] == "model-servers"
    after = stack.upstream.stats()["by_path"]
    assert after.get("llama-3-8b", 0) - before.get("llama-3-8b", 0) == 2
    assert after.get("mistral-7b", 0) - before.get("mistral-7b", 0) == 1


def test_a_per_request_timeout_bounds_the_wait(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {stack.client().api_key}"},
        json={"model": "mixed", "messages": HELLO, "timeout": "soon"},
        timeout=10,
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "timeout"


def test_a_body_api_base_is_used_only_by_keys_allowed_to_bring_their_own_upstream(stack: Stack) -> None:
    def key(**params) -> str:
        response = httpx.post(
            f"{stack.base_url}/key/generate", headers={"authorization": f"Bearer {MASTER_KEY}"}, json=params, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()["key"]

    def call(api_key: str) -> httpx.Response:
        return httpx.post(
            f"{stack.base_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {api_key}"},
            json={"model": "backup", "messages": HELLO, "api_base": f"{stack.upstream.root_url}/byo/v1"},
            timeout=20,
        )

    before = stack.upstream.stats()["by_path"].get("byo", 0)
    assert call(key()).status_code == 200  # the body's api_base is ignored: the configured upstream answers
    assert stack.upstream.stats()["by_path"].get("byo", 0) == before
    allowed = key(permissions={"allow_client_side_credentials": True})
    assert call(allowed).status_code == 200
    assert stack.upstream.stats()["by_path"].get("byo", 0) == before + 1
    bad = httpx.post(
        f"{stack.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {allowed}"},
        json={"model": "backup", "messages": HELLO, "api_base": "file:///etc/passwd"},
        timeout=20,
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "api_base"
