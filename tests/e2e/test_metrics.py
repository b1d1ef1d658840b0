"""Prometheus metrics of every process after a known mix of requests.

Whole answers, streams, a failed upstream call and refusals (a bad key, an unknown model, a bad
body) go through a stack whose edge runs two Granian workers; then each process's `/metrics` is
scraped and parsed with prometheus_client's own text parser, and its counters and histogram
counts are held against what was sent and against the usage rows metering stored.
"""

from __future__ import annotations

import math

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.stack import Stack
from tests.procs import free_port
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

WHOLE, STREAMED = 4, 3
FAILED = 4  # past the router's allowed_fails (3 a minute): its deployment is cooled down
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    env = {
        "LLMGW_HTTP_WORKERS": "2",
        "LLMGW_WORKER_METRICS_PORT": str(free_port()),
        "LLMGW_METERING_METRICS_PORT": str(free_port()),
    }
    s = Stack(tmp_path_factory.mktemp("metrics"), nats_server.url, "e2emetrics", upstream, env)
    yield s.start()
    s.stop()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


@pytest.fixture(scope="module")
def mix(stack: Stack) -> dict[str, list[str]]:
    """Send the mix once; the request ids of each kind."""
    client = stack.client()
    ids: dict[str, list[str]] = {"whole": [], "streamed": [], "failed": [], "refused": []}
    for _ in range(WHOLE):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=HELLO)
        raw.parse()
        ids["whole"].append(raw.headers["x-request-id"])
    for _ in range(STREAMED):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(raw.parse())
        assert chunks and chunks[-1].usage is not None
        ids["streamed"].append(raw.headers["x-request-id"])
    for _ in range(FAILED):
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="err-500", messages=HELLO)
        assert failed.value.status_code >= 500
        ids["failed"].append(failed.value.response.headers["x-request-id"])
    bad_key = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="sk-not-a-key-0000", max_retries=0)
    for _ in range(2):
        with pytest.raises(openai.AuthenticationError):
            bad_key.chat.completions.create(model="gpt-4", messages=HELLO)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    ids["refused"].append(unknown.value.response.headers["x-request-id"])
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "nobody", "content": "hi"}])  # type: ignore[list-item]
    ids["refused"].append(bad.value.response.headers["x-request-id"])
    # answered outside the pipeline: a route that does not exist, an admin route with a bad key,
    # and an admin route's answer
    assert httpx.get(f"{stack.base_url}/v1/no-such-route", timeout=10).status_code == 404
    bad_admin = httpx.get(f"{stack.base_url}/key/info", headers={"Authorization": "Bearer sk-not-a-key-0000"}, timeout=10)
    assert bad_admin.status_code == 401
    assert httpx.get(f"{stack.base_url}/health/live", timeout=10).status_code == 200
    return ids


def test_the_edge_counts_every_request_once_over_its_workers(stack: Stack, mix: dict[str, list[str]]) -> None:
    # Several scrapes, answered by either HTTP worker: each reports the same, whole edge's totals.
    pages = [scrape(f"{stack.base_url}/metrics") for _ in range(6)]
    answered = WHOLE + STREAMED
    for page in pages:
        assert (
            value(page, "llmgw_requests_total", route="chat", model_group="gpt-4", provider="openai", status_class="2xx")
            == answered
        )
        assert (
            value(page, "llmgw_requests_total", route="chat", model_group="err-500", provider="openai", status_class="5xx")
            == FAILED
        )
        # refused before a model was known: no model group, no provider
        assert value(page, "llmgw_requests_total", route="chat", model_group="", provider="", status_class="4xx") == 4
        assert value(page, "llmgw_request_duration_seconds_count", route="chat") == answered + FAILED + 4
        assert value(page, "llmgw_time_to_first_token_seconds_count", route="chat") == STREAMED
        # outside the pipeline: counted by path template (`unmatched`: no route took it)
        assert value(page, "llmgw_requests_total", route="unmatched", model_group="", provider="", status_class="4xx") == 1
        assert value(page, "llmgw_requests_total", route="/key/info", model_group="", provider="", status_class="4xx") == 1
        assert value(page, "llmgw_requests_total", route="/health/live", model_group="", provider="", status_class="2xx") == 1
        assert total(page, "llmgw_requests_total", route="/metrics") == 0  # a scrape is not traffic
        assert value(page, "llmgw_refusals_total", reason="auth") == 3
        assert value(page, "llmgw_refusals_total", reason="model_access") == 1
        assert value(page, "llmgw_refusals_total", reason="bad_input") == 2
        assert total(page, "llmgw_refusals_total") == 6
        assert value(page, "llmgw_edge_in_flight_requests") == 0
        assert value(page, "llmgw_key_map_last_update_timestamp_seconds") > 0
        # the +Inf bucket holds every observation
        assert value(page, "llmgw_request_duration_seconds_bucket", route="chat", le="+Inf") == answered + FAILED + 4
    # no caller, key or request id among the labels
    labels = {name for page in pages for _, ls in page for name, _ in ls}
    assert not labels & {"key", "key_hash", "user", "user_id", "request_id", "team", "team_id"}


def test_worker_tokens_spend_and_upstream_match_the_usage_rows(stack: Stack, mix: dict[str, list[str]]) -> None:
    worker_ids = mix["whole"] + mix["streamed"] + mix["failed"]
    rows = stack.usage_rows(worker_ids)
    page = scrape(f"http://127.0.0.1:{stack.env['LLMGW_WORKER_METRICS_PORT']}/metrics")
    ok = [rows[i] for i in mix["whole"] + mix["streamed"]]
    assert {r["status"] for r in ok} == {"success"}
    for direction, column in (("prompt", "prompt_tokens"), ("completion", "completion_tokens")):
        expected = sum(r[column] for r in ok)
        assert expected > 0
        assert value(page, "llmgw_tokens_total", direction=direction, model_group="gpt-4") == expected
    spend = value(page, "llmgw_spend_usd_total", model_group="gpt-4")
    assert spend > 0 and math.isclose(spend, sum(r["cost"] for r in ok), rel_tol=1e-9)
    (deployment,) = {r["deployment_id"] for r in ok}
    assert value(page, "llmgw_upstream_duration_seconds_count", deployment=deployment) == WHOLE + STREAMED
    assert total(page, "llmgw_upstream_errors_total", deployment=deployment) == 0
    failed = [rows[i] for i in mix["failed"]]
    assert {r["status"] for r in failed} == {"upstream_error"}
    (broken,) = {r["deployment_id"] for r in failed}
    assert value(page, "llmgw_upstream_errors_total", deployment=broken, status_class="5xx") == FAILED
    assert value(page, "llmgw_upstream_duration_seconds_count", deployment=broken) == FAILED
    assert value(page, "llmgw_worker_in_flight_requests") == 0
    # err-500's deployment failed past allowed_fails: in cooldown; the one that answered is not
    assert value(page, "llmgw_cooldown_active", deployment=broken) == 1
    assert value(page, "llmgw_cooldown_active", deployment=deployment) == 0
    # the request consumers' depth, asked of JetStream on the scrape: nothing waits now
    depth = {ls: v for (n, ls), v in page.items() if n == "llmgw_jetstream_pending_messages"}
    assert depth and all(v == 0 for v in depth.values())


def test_metering_counts_the_rows_it_stored(stack: Stack, mix: dict[str, list[str]]) -> None:
    ids = mix["whole"] + mix["streamed"] + mix["failed"] + mix["refused"]
    stack.usage_rows(ids)
    (stored,) = stack.query("SELECT count() AS n FROM usage FINAL")
    url = f"http://127.0.0.1:{stack.env['LLMGW_METERING_METRICS_PORT']}/metrics"

    def settled() -> Samples | None:
        page = scrape(url)
        return page if value(page, "llmgw_usage_rows_inserted_total") == stored["n"] else None

    page = eventually_sync(settled, "metering's row count to reach the stored rows", timeout=20)
    assert stored["n"] == len(ids)
    assert value(page, "llmgw_clickhouse_insert_duration_seconds_count") >= 1
    depth = {ls: v for (n, ls), v in page.items() if n == "llmgw_jetstream_pending_messages"}
    assert len(depth) == 1 and list(depth.values()) == [0]
    assert ("llmgw_metering_lag_seconds", ()) in page


def test_metrics_turned_off_are_neither_counted_nor_served(nats_server, upstream, tmp_path, bus_prefix) -> None:
    worker_port = free_port()
    env = {"LLMGW_METRICS": "false", "LLMGW_WORKER_METRICS_PORT": str(worker_port)}
    stack = Stack(tmp_path, nats_server.url, bus_prefix, upstream, env).start()
    try:
        answer = stack.client().chat.completions.create(model="gpt-4", messages=HELLO)
        assert answer.choices[0].message.content
        page = httpx.get(f"{stack.base_url}/metrics", timeout=10)
        assert page.status_code == 404 and page.json()["error"]["type"] == "not_found_error"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=5)
    finally:
        stack.stop()
