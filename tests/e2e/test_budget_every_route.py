"""No route is a way around a budget: for each route a client can spend through (chat whole and
streamed, embeddings, completions, Responses whole and streamed, images, transcription, speech,
moderations, rerank, `/v1/messages`, and the native passthroughs `/openai` (chat and Responses,
whole and streamed), `/anthropic`, `/gemini`), a key with a budget for a few calls is served until
its budget is spent, then refused with 429 `budget_exceeded`, and never spends past it (settled
spend in ClickHouse and in `/key/info`); a budgeted key calling a model without a price is refused
with 400 `model_price_unknown`, and served at cost 0 (`cost_known` false) by an edge that allows
unpriced models. Every request has exactly one usage row, refusals included (status `refused`).

One stack for all of them: an edge, a second edge with LLMGW_ALLOW_UNPRICED_MODELS=true, a worker
and metering on one nats-server, in front of the fake OpenAI, Anthropic and Gemini upstreams.
`/v1/messages/count_tokens` costs nothing: a key whose budget is spent, or one calling a model
without a price, still counts tokens, each call a row at cost 0.
"""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.e2e.budget_routes import HELLO, ROUTES, BudgetRoute, Outcome, config
from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import FakeUpstream, free_port, wait_ready
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

ANTHROPIC_KEY = "sk-ant-budget-e2e-upstream-0001"
GEMINI_KEY = "gm-budget-e2e-upstream-0002"
MOST_CALLS = 15  # a budget for a few calls is spent well before this many


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory):
    started = {
        "anthropic": FakeUpstream(tmp_path_factory.mktemp("anthropic"), ANTHROPIC_KEY, module="bench.fake_anthropic").start(),
        "gemini": FakeUpstream(tmp_path_factory.mktemp("gemini"), GEMINI_KEY, module="bench.fake_gemini").start(),
    }
    yield started
    for fake in started.values():
        fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, fakes, tmp_path_factory: pytest.TempPathFactory):
    text = config(upstream.base_url, fakes["anthropic"].root_url, fakes["gemini"].root_url)
    env = {"E2E_ANTHROPIC_KEY": ANTHROPIC_KEY, "E2E_GEMINI_KEY": GEMINI_KEY}
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2ebudgetroutes", upstream, env, config=text).start()
    port = free_port()
    s._start("edge-unpriced", "gateway", {"LLMGW_PORT": str(port), "LLMGW_ALLOW_UNPRICED_MODELS": "true"})
    s.unpriced_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    wait_ready(s.unpriced_url, 45)  # type: ignore[attr-defined]
    yield s
    s.stop()


def admin(stack: Stack, path: str, params: dict | None = None, body: dict | None = None) -> dict:
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    if body is None:
        response = httpx.get(stack.base_url + path, params=params, headers=headers, timeout=10)
    else:
        response = httpx.post(stack.base_url + path, json=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def new_key(stack: Stack, max_budget: float) -> tuple[str, str]:
    key = admin(stack, "/key/generate", body={"max_budget": max_budget})["key"]
    return key, admin(stack, "/key/info", params={"key": key})["info"]["token"]


def settled(stack: Stack, token: str) -> tuple[int, float]:
    rows = stack.query(
        "SELECT count() AS n, sum(cost) AS cost FROM usage FINAL WHERE key_hash = {k:String} AND status != 'refused'",
        {"k": token},
    )
    return int(rows[0]["n"]), float(rows[0]["cost"] or 0)


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_a_budget_for_a_few_calls_is_never_overspent(stack, route: BudgetRoute):
    probe = route.call(stack.base_url, MASTER_KEY, route.model)  # what one call costs (no budget)
    assert probe.status == 200 and not probe.stopped, probe
    one = float(stack.usage_rows([probe.request_id])[probe.request_id]["cost"])
    assert 0 < one <= route.worst + 1e-12, (one, route.worst)
    budget = route.worst + 2.5 * one  # the worst case of a call, and room for two and a half more
    key, token = new_key(stack, budget)
    outcomes: list[Outcome] = []
    while len(outcomes) < MOST_CALLS and not (outcomes and outcomes[-1].status == 429):
        outcomes.append(route.call(stack.base_url, key, route.model))
    served = [o for o in outcomes if o.status == 200]
    assert len(served) >= 2, outcomes
    assert outcomes[-1].status == 429 and outcomes[-1].code == "budget_exceeded", outcomes
    assert all(o.status in (200, 429) for o in outcomes), outcomes
    rows = stack.usage_rows([o.request_id for o in outcomes])
    assert len(rows) == len(outcomes)  # one row a request, the refused one too
    # The last one refused: by the edge (the budget cannot hold its least cost), or by the worker
    # before calling upstream (what is left cannot pay for the least answer the API accepts).
    last = rows[outcomes[-1].request_id]
    assert (last["status"], last["http_status"], last["error_code"]) in (
        ("refused", 429, "budget_exceeded"),
        ("budget_stopped", 429, "budget_exceeded"),
    ), last
    assert float(last["cost"]) == 0.0
    for o in served:
        assert rows[o.request_id]["status"] in ("success", "budget_stopped"), rows[o.request_id]
        assert float(rows[o.request_id]["cost"]) > 0 and rows[o.request_id]["cost_known"] in (1, True)
    n, spent = settled(stack, token)
    assert n == len(served) + (last["status"] != "refused") and spent <= budget + 1e-12
    key_spend = eventually_sync(
        lambda: (s := admin(stack, "/key/info", params={"key": key})["info"]["spend"]) >= spent - 1e-12 and s,
        "the key's settled spend",
        timeout=20,
    )
    assert key_spend == pytest.approx(spent, abs=1e-12) and key_spend <= budget + 1e-12


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_a_budgeted_key_is_refused_a_model_without_a_price_unless_the_operator_allows_it(stack, route: BudgetRoute):
    key, token = new_key(stack, 1.0)
    refused = route.call(stack.base_url, key, route.unpriced)
    assert (refused.status, refused.code) == (400, "model_price_unknown"), refused
    allowed = route.call(stack.unpriced_url, key, route.unpriced)
    assert allowed.status == 200 and not allowed.stopped, allowed
    rows = stack.usage_rows([refused.request_id, allowed.request_id])
    row = rows[refused.request_id]
    assert (row["status"], row["http_status"], row["error_code"], float(row["cost"])) == (
        "refused",
        400,
        "model_price_unknown",
        0.0,
    )
    served = rows[allowed.request_id]
    assert served["status"] == "success" and float(served["cost"]) == 0.0, served
    assert served["cost_known"] in (0, False), served
    assert settled(stack, token) == (1, 0.0)


@pytest.mark.parametrize("model", ["gpt", "claude", "u-chat", "u-claude"])
def test_counting_tokens_costs_nothing_and_needs_no_budget_left(stack, model: str):
    key, token = new_key(stack, 1e-12)  # less than any call costs
    client = anthropic.Anthropic(base_url=stack.base_url, api_key=key, max_retries=0, timeout=30)
    raw = client.messages.with_raw_response.count_tokens(
        model=model, messages=[{"role": "user", "content": "Hello there, how many tokens is this?"}]
    )
    assert raw.parse().input_tokens > 0
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["operation"], float(row["cost"])) == ("success", "count_tokens", 0.0), row
    with pytest.raises(anthropic.RateLimitError):  # a call that costs is still refused
        client.messages.create(model=model if model in ("gpt", "claude") else "gpt", max_tokens=8, messages=HELLO)
    assert settled(stack, token) == (1, 0.0)
