"""Every metric the Operations dashboard's PromQL names is one the gateway serves: after whole
answers, streams, failed upstream calls (past allowed_fails: a cooldown) and a refusal, the
samples of live scrapes of the edge, a worker and metering hold each name."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.dashboards import metric_names, prometheus_queries
from tests.e2e.stack import Stack
from tests.procs import free_port

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hello"}]
FAILED = 4  # past the router's allowed_fails (3 a minute): the deployment is cooled down


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    env = {"LLMGW_WORKER_METRICS_PORT": str(free_port()), "LLMGW_METERING_METRICS_PORT": str(free_port())}
    s = Stack(tmp_path_factory.mktemp("dashboard-metrics"), nats_server.url, "e2edashmetrics", upstream, env)
    yield s.start()
    s.stop()


def sample_names(url: str) -> set[str]:
    """The names of the samples of one /metrics page."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    return {sample.name for family in text_string_to_metric_families(response.text) for sample in family.samples}


@pytest.fixture(scope="module")
def served(stack: Stack) -> dict[str, set[str]]:
    """Send the mix, wait for its usage rows, then scrape each process."""
    client = stack.client()
    ids = []
    for _ in range(2):
        whole = client.chat.completions.with_raw_response.create(model="gpt-4", messages=HELLO)
        assert whole.parse().choices
        streamed = client.chat.completions.with_raw_response.create(
            model="gpt-4", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        assert list(streamed.parse())
        ids += [whole.headers["x-request-id"], streamed.headers["x-request-id"]]
    for _ in range(FAILED):
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="err-500", messages=HELLO)
        ids.append(failed.value.response.headers["x-request-id"])
    bad_key = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="sk-not-a-key-0000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.chat.completions.create(model="gpt-4", messages=HELLO)
    assert len(stack.usage_rows(ids)) == len(ids)
    return {
        "edge": sample_names(f"{stack.base_url}/metrics"),
        "worker": sample_names(f"http://127.0.0.1:{stack.env['LLMGW_WORKER_METRICS_PORT']}/metrics"),
        "metering": sample_names(f"http://127.0.0.1:{stack.env['LLMGW_METERING_METRICS_PORT']}/metrics"),
    }


def test_every_metric_a_dashboard_names_is_served(served: dict[str, set[str]]) -> None:
    queries = prometheus_queries()
    assert queries
    every = set().union(*served.values())
    for _uid, title, expr in queries:
        missing = metric_names(expr) - every
        assert not missing, f"{title}: {sorted(missing)} in no scrape of the edge, a worker or metering"


def test_the_scrapes_are_each_process_own(served: dict[str, set[str]]) -> None:
    # each page was its process's: the names the dashboards read of one process are not on another's
    assert "llmgw_requests_total" in served["edge"] and "llmgw_requests_total" not in served["worker"]
    assert "llmgw_cooldown_active" in served["worker"] and "llmgw_upstream_errors_total" in served["worker"]
    assert "llmgw_metering_lag_seconds" in served["metering"] and "llmgw_metering_lag_seconds" not in served["edge"]
    assert "llmgw_jetstream_pending_messages" in served["worker"] & served["metering"]
