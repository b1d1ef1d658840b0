"""Budgets that hold under concurrency, without false lock-outs, down to a stream cut at the limit.

Prices come from the shipped table: the `gpt-4` group is served by `gpt-4o` ($2.50 / $10 per 1M
tokens). A request of "Hello there" (3 prompt tokens) answered with 10 tokens costs
3 x 2.5e-6 + 10 x 1e-5 = 0.0001075 USD.
"""

from __future__ import annotations

import concurrent.futures
from datetime import datetime, timedelta

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "Hello there"}]
ONE_REQUEST = 3 * 2.5e-6 + 10 * 1e-5


def new_key(stack, **params) -> str:
    resp = httpx.post(f"{stack.base_url}/key/generate", json=params, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert resp.status_code == 200, resp.text
    return resp.json()["key"]


def key_info(stack, key: str) -> dict:
    return httpx.get(f"{stack.base_url}/key/info", params={"key": key}, headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()[
        "info"
    ]


def spent_in_clickhouse(stack, token: str) -> tuple[int, float]:
    rows = stack.query(
        "SELECT count() AS n, sum(cost) AS cost FROM usage FINAL WHERE key_hash = {k:String} AND status != 'refused'",
        {"k": token},
    )
    return int(rows[0]["n"]), float(rows[0]["cost"] or 0)


def test_concurrent_requests_never_overspend_and_leave_no_lock_out(stack):
    budget = 10 * ONE_REQUEST
    key = new_key(stack, max_budget=budget, models=["gpt-4"])
    token = key_info(stack, key)["token"]
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0, timeout=60)

    def call(_):
        try:
            client.chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=10)
            return "ok"
        except openai.RateLimitError as err:
            assert err.code == "budget_exceeded" and "max_budget" in err.message
            return "refused"

    with concurrent.futures.ThreadPoolExecutor(100) as pool:
        outcomes = list(pool.map(call, range(100)))
    admitted = outcomes.count("ok")
    assert admitted >= 1 and outcomes.count("refused") >= 1
    # Every admitted request is metered, and together they cost no more than the budget.
    n, cost = eventually_sync(lambda: (r := spent_in_clickhouse(stack, token))[0] >= admitted and r, "usage rows", timeout=30)
    assert n == admitted
    assert cost <= budget + 1e-12

    # ... and every refused one is a row of its own, at no cost.
    def refused_rows() -> tuple[int, float] | None:
        rows = stack.query(
            "SELECT count() AS n, sum(cost) AS cost FROM usage FINAL WHERE key_hash = {k:String} AND status = 'refused'",
            {"k": token},
        )
        counted = (int(rows[0]["n"]), float(rows[0]["cost"] or 0))
        return counted if counted[0] >= outcomes.count("refused") else None

    # (the edge publishes its refusals on its own: they may land after the served requests' rows)
    assert eventually_sync(refused_rows, "the refusals' rows", timeout=30) == (outcomes.count("refused"), 0.0)
    spend = eventually_sync(
        lambda: (s := key_info(stack, key)["spend"]) >= cost - 1e-12 and s, "spend in the key's ledger", timeout=20
    )
    assert spend == pytest.approx(cost, abs=1e-12)

    # No false lock-out: a key with budget left (here: for about five more requests) is served.
    roomy = new_key(stack, max_budget=budget)
    roomy_client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=roomy, max_retries=0)
    for _ in range(5):
        assert roomy_client.chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=10).choices
    # ... and once its spend is settled, the reservations are gone: five more fit as well.
    eventually_sync(lambda: key_info(stack, roomy)["spend"] >= 5 * ONE_REQUEST - 1e-12, "settled spend", timeout=20)
    for _ in range(4):
        assert roomy_client.chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=10).choices


def test_a_stream_is_stopped_where_its_budget_ends(stack):
    # Room for the prompt and only a few answer tokens.
    key = new_key(stack, max_budget=0.00035)
    token = key_info(stack, key)["token"]
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="chunky", messages=HELLO, max_tokens=200, stream=True)
    words = []
    with pytest.raises(openai.APIError) as err:
        for chunk in raw.parse():
            words.append(chunk.choices[0].delta.content or "")
    assert "stream was stopped" in str(err.value)
    assert 0 < len("".join(words).split()) < 200
    n, cost = eventually_sync(lambda: (r := spent_in_clickhouse(stack, token))[0] >= 1 and r, "the usage row", timeout=30)
    assert n == 1 and cost <= 0.00035 + 1e-12
    row = stack.usage_rows([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
    assert row["status"] == "budget_stopped"


def test_user_and_team_budgets_cover_their_keys(stack):
    team = httpx.post(
        f"{stack.base_url}/team/new",
        json={"team_id": "frugal", "max_budget": 0.0},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
    )
    assert team.status_code == 200
    key = new_key(stack, team_id="frugal")
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=10)
    assert "team frugal" in err.value.message


def test_model_max_budget_and_budget_period(stack):
    key = new_key(stack, model_max_budget={"gpt-4": 0.0}, budget_duration="1h", max_budget=1.0)
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=10)
    assert "on gpt-4" in err.value.message
    assert client.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, max_tokens=10).choices
    info = key_info(stack, key)
    created = datetime.fromisoformat(info["created_at"])
    assert datetime.fromisoformat(info["budget_reset_at"]) - created == timedelta(hours=1)
