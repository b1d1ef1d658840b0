"""`GET /health` per deployment, as LiteLLM's proxy answers it: from cooldowns and recent traffic
by default, and with `?active=true` by calling each deployment through a worker."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hello there"}]


def health_config(base: str) -> str:
    def deployment(name: str, upstream: str, dep_id: str, key: str = "os.environ/E2E_UPSTREAM_KEY") -> str:
        return (
            f"  - model_name: {name}\n    params:\n      model: openai/{upstream}\n      api_base: {base}\n"
            f"      api_key: {key}\n    model_info:\n      id: {dep_id}\n"
        )

    return (
        "model_list:\n"
        + deployment("fine", "gpt-4o", "fine-1")
        + deployment("quiet", "gpt-4o-mini", "quiet-1")
        + deployment("broken", "fake-error-503", "broken-1")
        + deployment("badkey", "gpt-4o", "badkey-1", key="sk-refused-by-upstream-0000")
        + deployment("wild/*", "*", "wild-1")
        + "router_settings:\n  allowed_fails: 1\n  cooldown_time: 600\n"
        + "general_settings:\n  master_key: os.environ/E2E_MASTER_KEY\n"
    )


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    s = Stack(
        tmp_path_factory.mktemp("stack"),
        nats_server.url,
        "e2ehealth",
        upstream,
        {},
        config=health_config(upstream.base_url),
    ).start()
    yield s
    s.stop()


def health(stack: Stack, query: str = "", key: str = MASTER_KEY) -> httpx.Response:
    return httpx.get(f"{stack.base_url}/health{query}", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def by_id(body: dict) -> dict[str, dict]:
    return {e["model_id"]: e for e in body["healthy_endpoints"] + body["unhealthy_endpoints"]}


def healthy_ids(body: dict) -> set[str]:
    return {e["model_id"] for e in body["healthy_endpoints"]}


def call(stack: Stack, model: str) -> int:
    try:
        stack.client().chat.completions.create(model=model, messages=HELLO)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def test_health_reports_cooldowns_and_recent_failures_without_calling_models(stack):
    assert call(stack, "fine") == 200
    assert call(stack, "badkey") >= 400  # the upstream refuses the credential
    calls_before = stack.upstream.stats()["requests"]
    for _ in range(2):  # past allowed_fails (1): cooled down on every edge and worker
        assert call(stack, "broken") >= 500

    def settled():
        body = health(stack).json()
        entries = by_id(body)
        ready = entries["fine-1"]["recent_traffic"] and entries["fine-1"]["recent_traffic"]["requests"] >= 1
        return body if ready and entries["broken-1"]["cooldown"] and entries["badkey-1"]["recent_traffic"]["requests"] else None

    body = eventually_sync(settled, "the usage rows and the cooldown to reach /health", timeout=20)
    assert body["active_check"] is False
    assert stack.upstream.stats()["requests"] == calls_before + 2  # /health itself called nothing
    entries = by_id(body)
    assert {"fine-1", "wild-1"} <= healthy_ids(body)
    assert {e["model_id"] for e in body["unhealthy_endpoints"]} == {"broken-1", "badkey-1"}
    assert body["healthy_count"] == len(body["healthy_endpoints"]) and body["unhealthy_count"] == 2

    broken = entries["broken-1"]
    assert broken["source"] == "cooldown" and "upstream_error" in broken["cooldown"]["reason"]
    assert "cooldown" in broken["error"]
    badkey = entries["badkey-1"]
    assert badkey["source"] == "recent_traffic" and badkey["cooldown"] is None
    assert badkey["recent_traffic"]["failures"] == 1 and "latest request failed" in badkey["error"]
    fine = entries["fine-1"]
    assert fine["source"] == "recent_traffic" and fine["recent_traffic"]["failures"] == 0
    assert fine["recent_traffic"]["last_status"] == "success" and fine["model"] == "openai/gpt-4o"
    wild = entries["wild-1"]  # (nothing calls it, not even an active check)
    assert wild["source"] == "no_traffic" and wild["recent_traffic"]["requests"] == 0
    assert "sk-refused" not in str(body)

    one = health(stack, "?model=broken").json()
    assert list(by_id(one)) == ["broken-1"] and one["unhealthy_count"] == 1


def test_active_check_calls_each_deployment_when_asked(stack):
    before = stack.upstream.stats()["by_model"]
    body = health(stack, "?active=true").json()
    assert body["active_check"] is True
    entries = by_id(body)
    assert entries["fine-1"]["active_check"]["healthy"] is True and entries["fine-1"]["source"] == "active_check"
    assert entries["quiet-1"]["active_check"]["healthy"] is True
    assert "fine-1" in healthy_ids(body) and "quiet-1" in healthy_ids(body)
    after = stack.upstream.stats()["by_model"]
    assert after.get("gpt-4o-mini", 0) == before.get("gpt-4o-mini", 0) + 1  # called once, by the check
    bad = entries["badkey-1"]
    assert bad["active_check"]["healthy"] is False and "active check failed" in bad["error"]
    assert entries["wild-1"]["active_check"] is None  # a wildcard has no model to call
    assert "sk-refused" not in str(body)

    only = health(stack, "?active=true&model_id=quiet-1").json()
    assert list(by_id(only)) == ["quiet-1"] and only["healthy_count"] == 1


def test_health_is_for_admins_and_checks_its_parameters(stack):
    key = httpx.post(
        f"{stack.base_url}/key/generate", json={}, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10
    ).json()["key"]
    refused = health(stack, key=key)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    assert httpx.get(f"{stack.base_url}/health", timeout=10).status_code == 401
    for query, param in (("?active=maybe", "active"), ("?window=0", "window")):
        resp = health(stack, query)
        assert resp.status_code == 400 and resp.json()["error"]["param"] == param


def test_a_model_added_at_run_time_has_its_health_too(stack):
    body = {
        "model_name": "added",
        "litellm_params": {"model": "openai/gpt-4o", "api_base": stack.upstream.base_url, "api_key": stack.upstream.api_key},
        "model_info": {"id": "added-1"},
    }
    resp = httpx.post(f"{stack.base_url}/model/new", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    checked = health(stack, "?active=1&model_id=added-1").json()
    assert checked["healthy_count"] == 1 and by_id(checked)["added-1"]["active_check"]["healthy"] is True
