"""Rate limits through the whole gateway with three edge processes on one bus: a key's, a team's
and a deployment's limits hold for all edges together, with OpenAI's x-ratelimit headers, and a
429 `rate_limit_exceeded` that names the limit and says when to retry."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests.e2e.stack import MASTER_KEY, Stack, write_config
from tests.e2e.test_revocation import Edge, start_edge

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stack")
    config = write_config(root / "base.yaml", upstream.base_url).read_text()
    model_list, _, rest = config.partition("general_settings:")
    capped = (  # a group whose first deployment takes 3 requests a minute, and a second without a cap
        "  - model_name: capped\n    params:\n      model: openai/gpt-4o\n"
        f"      api_base: {upstream.base_url}\n      api_key: os.environ/E2E_UPSTREAM_KEY\n      rpm: 3\n"
        "    model_info:\n      id: capped-small\n"
        "  - model_name: capped\n    params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstream.base_url}\n      api_key: os.environ/E2E_UPSTREAM_KEY\n      weight: 0.000001\n"
        "    model_info:\n      id: capped-spare\n"
    )
    s = Stack(
        root, nats_server.url, "e2eratelimits", upstream, {}, config=model_list + capped + "general_settings:" + rest
    ).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def edges(stack: Stack):
    edges = [Edge("edge", stack.base_url), start_edge(stack, "edge-b"), start_edge(stack, "edge-c")]
    yield edges
    for e in edges:
        e.http.close()


def chat(edge: Edge, key: str, model: str = "gpt-4") -> httpx.Response:
    return edge.chat(key, model)


def test_an_rpm_limit_holds_across_three_edges(edges) -> None:
    key = edges[0].admin("/key/generate", {"rpm_limit": 10})["key"]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda i: edges[i % 3].chat(key), range(36)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10 and statuses.count(429) == 26, statuses
    refused = next(r for r in responses if r.status_code == 429)
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert "10 requests per minute" in error["message"] and "key" in error["message"]
    assert float(refused.headers["retry-after"]) > 0
    assert refused.headers["x-ratelimit-limit-requests"] == "10"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    served = [r for r in responses if r.status_code == 200]
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in served)
    assert remaining == list(range(10)), remaining  # each admission saw the count of all edges


def test_a_team_limit_counts_the_requests_of_all_its_keys(edges) -> None:
    team = edges[0].admin("/team/new", {"rpm_limit": 4})["team_id"]
    keys = [edges[i].admin("/key/generate", {"team_id": team})["key"] for i in range(3)]
    statuses = [edges[i % 3].chat(keys[i % 3]).status_code for i in range(9)]
    assert statuses.count(200) == 4 and statuses.count(429) == 5
    refused = edges[1].chat(keys[0])
    assert refused.status_code == 429 and "team" in refused.json()["error"]["message"]


def test_a_tpm_limit_refuses_once_the_tokens_are_used(edges) -> None:
    key = edges[0].admin("/key/generate", {"tpm_limit": 30})["key"]
    served = 0
    for i in range(20):
        response = edges[i % 3].chat(key)
        if response.status_code == 429:
            error = response.json()["error"]
            assert "tokens per minute" in error["message"]
            assert response.headers["x-ratelimit-limit-tokens"] == "30"
            break
        assert response.status_code == 200
        served += 1
    else:
        pytest.fail("the tpm limit never refused")
    assert 1 <= served < 20


def test_max_parallel_requests_holds_across_edges(edges) -> None:
    key = edges[0].admin("/key/generate", {"max_parallel_requests": 2})["key"]

    def slow(i: int) -> int:
        return edges[i % 3].chat(key, "slow").status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(slow, range(6)))
    assert 2 <= statuses.count(200) < 6 and statuses.count(200) + statuses.count(429) == 6, statuses
    assert edges[2].chat(key).status_code == 200  # the slots were given back


def test_a_deployment_over_its_rpm_is_passed_over_for_the_rest_of_its_group(stack: Stack, edges) -> None:
    ids = []
    for i in range(6):
        response = edges[i % 3].chat(MASTER_KEY, "capped")
        assert response.status_code == 200
        ids.append(response.headers["x-request-id"])
    rows = stack.usage_rows(ids)
    deployments = [rows[i]["deployment_id"] for i in ids]
    assert deployments.count("capped-small") == 3 and deployments.count("capped-spare") == 3, deployments
