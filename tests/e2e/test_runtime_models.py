"""Models at run time, as LiteLLM's proxy does it with `store_model_in_db`: `/model/new`,
`/model/update`, `/model/delete` and `/model/info?litellm_model_id=`, through two edges and two
workers that learn every change from the KV watch, without a restart."""

from __future__ import annotations

import asyncio

import httpx
import nats
import openai
import pytest

from llmgw.contracts import Subjects
from tests.e2e.stack import MASTER_KEY, UPSTREAM_KEY, Stack
from tests.procs import FakeUpstream, Proc, free_port, log_events, wait_ready
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "Hello there"}]
ANTHROPIC_KEY = "sk-ant-runtime-models-secret-4242"
IN_PRICE, OUT_PRICE = 3e-06, 7e-06


class Pair:
    """The module's stack with a second edge (its own port) and a second worker."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        port = free_port()
        self.second_url = f"http://127.0.0.1:{port}"
        self.second_worker = stack.start_worker()
        self.second_edge: Proc = stack._start("edge-1", "gateway", {"LLMGW_PORT": str(port)})
        wait_ready(self.second_url, 45)

    @property
    def urls(self) -> tuple[str, str]:
        return self.stack.base_url, self.second_url


@pytest.fixture(scope="module")
def pair(stack) -> Pair:
    return Pair(stack)


@pytest.fixture(scope="module")
def anthropic_fake(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("anthropic"), ANTHROPIC_KEY, module="bench.fake_anthropic").start()
    yield fake
    fake.stop()


def admin(method: str, url: str, body: dict | None = None, key: str = MASTER_KEY) -> httpx.Response:
    return httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def chat(base_url: str, model: str, key: str = MASTER_KEY):
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=HELLO)
    return raw.headers["x-request-id"], raw.parse()


def answered(base_url: str, model: str):
    try:
        return chat(base_url, model)
    except openai.NotFoundError:
        return None


def not_found(base_url: str, model: str) -> bool:
    try:
        chat(base_url, model)
    except openai.NotFoundError as exc:
        return exc.body is not None and exc.body.get("code") == "model_not_found"
    return False


def new_model(url: str, name: str, **params) -> dict:
    body = {
        "model_name": name,
        "litellm_params": {"model": "openai/gpt-4o", "api_key": UPSTREAM_KEY, **params},
        "model_info": {"description": "added at run time"},
    }
    resp = admin("POST", url + "/model/new", body)
    assert resp.status_code == 200, resp.text
    assert UPSTREAM_KEY not in resp.text
    return resp.json()


async def _settings_values(nats_url: str, bucket: str) -> list[bytes]:
    nc = await nats.connect(nats_url)
    try:
        kv = await nc.jetstream().key_value(bucket)
        return [(await kv.get(k)).value for k in await kv.keys()]
    finally:
        await nc.close()


def test_an_added_model_is_served_by_every_edge_and_worker_and_metered_at_its_prices(pair):
    stack = pair.stack
    first, second = pair.urls
    created = new_model(
        first, "runtime-gpt", api_base=stack.upstream.base_url, input_cost_per_token=IN_PRICE, output_cost_per_token=OUT_PRICE
    )
    model_id = created["model_id"]
    assert created["model_info"]["id"] == model_id and created["model_info"]["db_model"] is True
    assert created["litellm_params"]["api_key"] == f"sk-...{UPSTREAM_KEY[-4:]}"

    request_id, reply = chat(first, "runtime-gpt")  # the edge that took the write: at once
    assert reply.choices[0].message.content
    # The other edge and the other worker learn it from the KV watch, without a restart.
    second_id, _ = eventually_sync(lambda: answered(second, "runtime-gpt"), "the second edge to serve it", timeout=1.0)
    for worker in stack.workers:
        assert eventually_sync(
            lambda w=worker: log_events(w.output(), "runtime_model_applied", model_id=model_id),
            f"{worker.name} to learn the model",
            timeout=1.0,
        )

    rows = stack.usage_rows([request_id, second_id])
    for rid in (request_id, second_id):
        row = rows[rid]
        assert row["deployment_id"] == model_id and row["model_group"] == "runtime-gpt"
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
        expected = row["prompt_tokens"] * IN_PRICE + row["completion_tokens"] * OUT_PRICE
        assert row["cost"] == pytest.approx(expected, rel=1e-6) and row["cost_known"]

    # The credential is stored encrypted and never shown or logged.
    listing = admin("GET", second + f"/model/info?litellm_model_id={model_id}")
    assert listing.status_code == 200 and UPSTREAM_KEY not in listing.text
    stored = asyncio.run(_settings_values(stack.nats_url, Subjects(stack.prefix).settings_bucket))
    assert any(b"runtime-gpt" in v for v in stored)
    assert all(UPSTREAM_KEY.encode() not in v for v in stored)
    assert UPSTREAM_KEY not in stack.logs()


def test_an_update_changes_price_and_api_base_everywhere(pair):
    stack = pair.stack
    first, second = pair.urls
    model_id = new_model(first, "runtime-moving", api_base=stack.upstream.base_url, input_cost_per_token=IN_PRICE)["model_id"]
    eventually_sync(lambda: answered(second, "runtime-moving"), "the second edge to serve it", timeout=1.0)

    moved = f"{stack.upstream.root_url}/moved-{model_id[:8]}/v1"  # the fake counts calls by path
    resp = admin(
        "PATCH",
        second + f"/model/{model_id}/update",
        {"litellm_params": {"api_base": moved, "input_cost_per_token": 2 * IN_PRICE, "output_cost_per_token": OUT_PRICE}},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["litellm_params"]["api_base"] == moved
    assert resp.json()["litellm_params"]["api_key"] == f"sk-...{UPSTREAM_KEY[-4:]}"  # kept

    before = stack.upstream.stats()["by_path"].get(f"moved-{model_id[:8]}", 0)
    request_id, _ = chat(first, "runtime-moving")
    assert stack.upstream.stats()["by_path"].get(f"moved-{model_id[:8]}", 0) == before + 1
    row = stack.usage_rows([request_id])[request_id]
    expected = row["prompt_tokens"] * 2 * IN_PRICE + row["completion_tokens"] * OUT_PRICE
    assert row["cost"] == pytest.approx(expected, rel=1e-6)

    # LiteLLM's POST /model/update names the model in model_info.id.
    resp = admin("POST", first + "/model/update", {"model_info": {"id": model_id}, "model_name": "runtime-renamed"})
    assert resp.status_code == 200, resp.text
    assert eventually_sync(lambda: answered(second, "runtime-renamed"), "the renamed model on the second edge", timeout=1.0)
    assert eventually_sync(lambda: not_found(second, "runtime-moving"), "the old name to be gone", timeout=1.0)


def test_a_deleted_model_is_an_unknown_model_everywhere(pair):
    first, second = pair.urls
    model_id = new_model(first, "runtime-doomed", api_base=pair.stack.upstream.base_url)["model_id"]
    eventually_sync(lambda: answered(second, "runtime-doomed"), "the second edge to serve it", timeout=1.0)

    resp = admin("POST", second + "/model/delete", {"id": model_id})
    assert resp.status_code == 200 and model_id in resp.json()["message"]
    assert not_found(second, "runtime-doomed")  # the edge that took the delete: at once
    assert eventually_sync(lambda: not_found(first, "runtime-doomed"), "the first edge to drop it", timeout=1.0)
    gone = admin("GET", first + f"/model/info?litellm_model_id={model_id}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    again = admin("POST", first + "/model/delete", {"id": model_id})
    assert again.status_code == 404


def test_model_info_filters_by_id_and_config_models_stay(pair):
    first, _ = pair.urls
    model_id = new_model(first, "runtime-listed", api_base=pair.stack.upstream.base_url)["model_id"]
    whole = admin("GET", first + "/model/info").json()["data"]
    ids = {m["model_info"]["id"]: m for m in whole}
    assert model_id in ids and ids[model_id]["model_info"]["db_model"] is True
    config = next(m for m in whole if m["model_name"] == "gpt-4")
    assert config["model_info"]["db_model"] is False

    one = admin("GET", first + f"/model/info?litellm_model_id={model_id}").json()["data"]
    assert [m["model_info"]["id"] for m in one] == [model_id]
    assert one[0]["model_info"]["description"] == "added at run time"
    assert admin("GET", first + "/v1/model/info?litellm_model_id=" + model_id).json()["data"] == one

    config_id = config["model_info"]["id"]
    for method, path, body in (
        ("POST", "/model/delete", {"id": config_id}),
        ("POST", "/model/update", {"model_info": {"id": config_id}, "litellm_params": {"rpm": 5}}),
    ):
        resp = admin(method, first + path, body)
        assert resp.status_code == 400, resp.text
        assert "config file" in resp.json()["error"]["message"]
    assert answered(first, "gpt-4")


def test_model_writes_are_for_admins_and_bad_models_are_refused(pair):
    first, _ = pair.urls
    key = admin("POST", first + "/key/generate", {"models": ["gpt-4"]}).json()["key"]
    body = {"model_name": "not-allowed", "litellm_params": {"model": "openai/gpt-4o"}}
    for method, path in (("POST", "/model/new"), ("POST", "/model/update"), ("POST", "/model/delete")):
        resp = admin(method, first + path, body | {"id": "x"}, key=key)
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["type"] == "permission_error"
    assert admin("POST", first + "/model/new", body, key="sk-not-a-key").status_code == 401

    # A key that is not an admin's reads only the models it may use, without their upstream.
    mine = admin("GET", first + "/model/info", key=key).json()["data"]
    assert {m["model_name"] for m in mine} == {"gpt-4"}
    assert set(mine[0]["litellm_params"]) == {"model"}

    for params, field in (({"model": "antropic/claude-x"}, "litellm_params"), ({}, "litellm_params.model")):
        resp = admin("POST", first + "/model/new", {"model_name": "broken", "litellm_params": params})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == field
    resp = admin("POST", first + "/model/new", {"model_name": "broken"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "litellm_params"
    assert not_found(first, "broken")


def test_a_model_of_a_new_provider_is_pulled_by_the_workers_without_restart(pair, anthropic_fake):
    first, second = pair.urls
    body = {
        "model_name": "runtime-claude",
        "litellm_params": {"model": "anthropic/claude-x", "api_base": anthropic_fake.root_url, "api_key": ANTHROPIC_KEY},
    }
    resp = admin("POST", first + "/model/new", body)
    assert resp.status_code == 200 and ANTHROPIC_KEY not in resp.text
    _, reply = eventually_sync(lambda: answered(second, "runtime-claude"), "the anthropic model to be served", timeout=5)
    assert reply.choices[0].message.content
    assert ANTHROPIC_KEY not in pair.stack.logs()
