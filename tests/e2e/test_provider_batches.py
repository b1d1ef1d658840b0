"""Batches handed to the provider's own batch API (a deployment with `batch_api: provider`), with
the official openai SDK against the gateway and the fake OpenAI's Batch API
(bench/fake_openai_batches.py): submitted once, polled, its lines read back into an output file in
OpenAI's format with the gateway's custom ids, one usage row per line at half the normal price;
the edge SIGKILLed while the provider runs the batch, and started again, polls the same provider
batch instead of submitting it again."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.stack import Stack, write_config
from tests.e2e.test_batches import ENDED, chat_line, client_for, file_lines, key_info, new_key, upload
from tests.procs import FakeUpstream, wait_ready
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

ENV = {
    "LLMGW_BATCH_POLL_SECONDS": "0.2",
    "LLMGW_PROVIDER_BATCH_POLL_SECONDS": "0.3",
    "LLMGW_BATCH_LEASE_SECONDS": "3",  # a killed edge's batch is taken over 3 s later
}
OPTED_IN = """  - model_name: batched
    litellm_params:
      model: openai/gpt-4o
      api_base: {base}
      api_key: os.environ/E2E_UPSTREAM_KEY
      batch_api: provider
"""


def config_for(stack_root, upstream) -> str:
    base = write_config(stack_root / "base.yaml", upstream.base_url).read_text()
    return base.replace("model_list:\n", "model_list:\n" + OPTED_IN.format(base=upstream.base_url), 1)


@pytest.fixture
def stack(nats_server, upstream, tmp_path, bus_prefix):
    s = Stack(tmp_path, nats_server.url, bus_prefix, upstream, dict(ENV), config=config_for(tmp_path, upstream)).start()
    yield s
    s.stop()
    set_delay(upstream, 1.0)


def set_delay(upstream, seconds: float) -> None:
    httpx.post(f"http://127.0.0.1:{upstream.port}/_fake/batch_delay", json={"seconds": seconds}, timeout=5).raise_for_status()


def ended(client, batch_id: str, timeout: float = 90):
    def probe():
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status in ENDED else None

    return eventually_sync(probe, f"batch {batch_id} to end", timeout=timeout, interval=0.3)


def rows_of(stack: Stack, batch_id: str, expected: int) -> list[dict]:
    """The batch's usage rows as stored (before merges: a double would show)."""
    sql = (
        "SELECT client_request_id, request_id, prompt_tokens, completion_tokens, toFloat64(cost) AS cost,"
        " status, http_status, model_group, deployment_id FROM usage WHERE startsWith(client_request_id, {p:String})"
    )

    def landed():
        rows = stack.query(sql, {"p": f"{batch_id}-"})
        return rows if len(rows) >= expected else None

    return eventually_sync(landed, f"{expected} usage rows of {batch_id}", timeout=40, interval=0.3)


def normal_cost(stack: Stack, line: dict) -> float:
    """What the line costs as an ordinary request (the x-litellm-response-cost header)."""
    raw = stack.client().chat.completions.with_raw_response.create(**line["body"])
    return float(raw.headers["x-litellm-response-cost"])


def test_an_opted_in_batch_is_submitted_once_to_the_provider_and_metered_at_half_price(stack: Stack) -> None:
    client = stack.client()
    before = stack.upstream.stats()
    lines = [chat_line(f"job-{i}", model="batched", max_tokens=3 + i) for i in range(4)]
    batch = client.batches.create(
        input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = ended(client, batch.id)
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (4, 4, 0)
    after = stack.upstream.stats()
    assert after["batches_created"] == before["batches_created"] + 1
    assert after["batch_polls"] > before["batch_polls"]
    # No line went through the chat route upstream: the provider's batch ran them.
    assert after["by_model"].get("gpt-4o", 0) == before["by_model"].get("gpt-4o", 0)

    output = file_lines(client, done.output_file_id)
    assert [o["custom_id"] for o in output] == [f"job-{i}" for i in range(4)]
    for i, o in enumerate(output):
        assert o["id"].startswith("batch_req_") and o["error"] is None
        assert o["response"]["status_code"] == 200
        assert o["response"]["request_id"] == f"{batch.id}-{i}-provider"
        body = o["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["usage"]["completion_tokens"] == 3 + i
        assert body["choices"][0]["message"]["content"] == " ".join(f"w{k}" for k in range(3 + i))
    assert done.error_file_id is None

    rows = rows_of(stack, batch.id, 4)
    assert sorted(r["client_request_id"] for r in rows) == [f"{batch.id}-{i}" for i in range(4)]
    by_line = {r["client_request_id"]: r for r in rows}
    for i, o in enumerate(output):
        row = by_line[f"{batch.id}-{i}"]
        usage = o["response"]["body"]["usage"]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
        assert row["status"] == "success" and row["model_group"] == "batched"
        assert row["cost"] == pytest.approx(normal_cost(stack, lines[i]) / 2, rel=1e-9)
        assert row["cost"] > 0
    total = sum(r["cost"] for r in rows)
    assert client.batches.retrieve(batch.id).model_extra["spend"] == pytest.approx(total, rel=1e-9)


def test_a_batch_on_a_deployment_not_opted_in_runs_line_by_line(stack: Stack) -> None:
    client = stack.client()
    before = stack.upstream.stats()["batches_created"]
    lines = [chat_line(f"plain-{i}") for i in range(2)]
    batch = client.batches.create(
        input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = ended(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 2
    assert stack.upstream.stats()["batches_created"] == before
    output = file_lines(client, done.output_file_id)
    assert all(o["response"]["request_id"].startswith("req-") for o in output)


def test_the_edge_restarted_mid_provider_batch_polls_it_again_and_never_submits_twice(stack: Stack) -> None:
    client = stack.client(timeout=30)
    set_delay(stack.upstream, 8.0)
    before = stack.upstream.stats()
    lines = [chat_line(f"r{i}", model="batched", max_tokens=2) for i in range(3)]
    batch = client.batches.create(
        input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    # Submitted and polled (its provider id is recorded before the first poll).
    eventually_sync(
        lambda: stack.upstream.stats()["batch_polls"] > before["batch_polls"],
        "the provider batch to be polled",
        timeout=30,
        interval=0.1,
    )
    assert stack.upstream.stats()["batches_created"] == before["batches_created"] + 1
    assert client.batches.retrieve(batch.id).status == "in_progress"
    stack.edge.kill()  # SIGKILL to its process group: no lease given up, nothing cleaned up
    polls_at_kill = stack.upstream.stats()["batch_polls"]
    stack.edge = stack._start("edge", "gateway")
    wait_ready(stack.base_url, 45)
    done = ended(client, batch.id)
    assert done.status == "completed", done
    after = stack.upstream.stats()
    assert after["batches_created"] == before["batches_created"] + 1  # never submitted again
    assert after["batch_polls"] > polls_at_kill  # the new edge polled the same batch
    output = file_lines(client, done.output_file_id)
    assert sorted(o["custom_id"] for o in output) == ["r0", "r1", "r2"]
    rows = rows_of(stack, batch.id, 3)
    assert sorted(r["client_request_id"] for r in rows) == [f"{batch.id}-{i}" for i in range(3)]


ANTHROPIC_KEY = "sk-ant-e2e-batches-000222"


@pytest.fixture
def anthropic_stack(nats_server, tmp_path, bus_prefix):
    (tmp_path / "anthropic").mkdir()
    fake = FakeUpstream(tmp_path / "anthropic", ANTHROPIC_KEY, module="bench.fake_anthropic").start()
    lines = ["model_list:"]
    for name, batch_api in (("claude-batched", True), ("claude", False)):
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            "      model: anthropic/claude-x",
            f"      api_base: {fake.root_url}",
            "      api_key: os.environ/E2E_UPSTREAM_KEY",
            "      input_cost_per_token: 3.0e-06",
            "      output_cost_per_token: 1.5e-05",
        ]
        if batch_api:
            lines.append("      batch_api: provider")
    lines += ["general_settings:", "  master_key: os.environ/E2E_MASTER_KEY", ""]
    (tmp_path / "stack").mkdir()
    s = Stack(tmp_path / "stack", nats_server.url, bus_prefix, fake, dict(ENV), config="\n".join(lines)).start()
    yield s
    s.stop()
    fake.stop()


def test_an_anthropic_batch_goes_to_message_batches_and_comes_back_in_openai_format(anthropic_stack: Stack) -> None:
    stack = anthropic_stack
    client = stack.client()
    lines = [chat_line(f"a{i}", model="claude-batched", max_tokens=2 + i) for i in range(3)]
    batch = client.batches.create(
        input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = ended(client, batch.id)
    assert done.status == "completed", done
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 0)
    stats = stack.upstream.stats()
    assert stats["batches_created"] == 1 and stats["batch_polls"] >= 1
    assert stats["by_model"].get("claude-x", 0) == 0  # no line went to /v1/messages one by one
    output = file_lines(client, done.output_file_id)
    assert [o["custom_id"] for o in output] == ["a0", "a1", "a2"]
    for i, o in enumerate(output):
        body = o["response"]["body"]
        assert o["response"]["status_code"] == 200 and body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == " ".join(f"w{k}" for k in range(2 + i))
        assert body["usage"]["completion_tokens"] == 2 + i
    rows = rows_of(stack, batch.id, 3)
    assert sorted(r["client_request_id"] for r in rows) == [f"{batch.id}-{i}" for i in range(3)]
    by_line = {r["client_request_id"]: r for r in rows}
    for i, o in enumerate(output):
        row = by_line[f"{batch.id}-{i}"]
        assert row["completion_tokens"] == 2 + i and row["prompt_tokens"] == o["response"]["body"]["usage"]["prompt_tokens"]
        plain = {**lines[i], "body": {**lines[i]["body"], "model": "claude"}}
        assert row["cost"] == pytest.approx(normal_cost(stack, plain) / 2, rel=1e-9) and row["cost"] > 0


def test_cancelling_a_handed_off_batch_cancels_the_providers(stack: Stack) -> None:
    client = stack.client()
    set_delay(stack.upstream, 60.0)
    before = stack.upstream.stats()
    lines = [chat_line(f"c{i}", model="batched") for i in range(2)]
    batch = client.batches.create(
        input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    eventually_sync(
        lambda: stack.upstream.stats()["batch_polls"] > before["batch_polls"], "the provider batch to be polled", timeout=30
    )
    assert client.batches.cancel(batch.id).status == "cancelling"
    done = ended(client, batch.id, timeout=30)
    assert done.status == "cancelled", done
    after = stack.upstream.stats()
    assert after["batch_cancels"] == before["batch_cancels"] + 1
    assert after["batches_created"] == before["batches_created"] + 1
    errors = file_lines(client, done.error_file_id)
    assert sorted(e["custom_id"] for e in errors) == ["c0", "c1"]
    assert all(e["error"]["code"] == "batch_cancelled" for e in errors)
    assert done.output_file_id is None


def test_a_budgeted_keys_batch_runs_line_by_line_and_its_spend_is_its_rows(stack: Stack) -> None:
    key = new_key(stack, max_budget=1.0)
    client = client_for(stack, key)
    before = stack.upstream.stats()["batches_created"]
    lines = [chat_line(f"k{i}", model="batched", max_tokens=4) for i in range(3)]
    batch = client.batches.create(
        input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = ended(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 3
    assert stack.upstream.stats()["batches_created"] == before  # (a provider's batch holds no reservation)
    rows = rows_of(stack, batch.id, 3)
    full = normal_cost(stack, lines[0])
    assert all(r["cost"] == pytest.approx(full, rel=1e-6) for r in rows)  # the full price, not the batch's
    total = sum(r["cost"] for r in rows)
    spent = eventually_sync(
        lambda: (s := key_info(stack, key)["spend"]) >= total - 1e-12 and s, "the key's spend to be settled", timeout=30
    )
    assert spent == pytest.approx(total, rel=1e-9)


def test_a_batch_past_its_keys_budget_is_not_handed_off_and_never_spends_past_it(stack: Stack) -> None:
    key = new_key(stack, max_budget=1e-4)
    client = client_for(stack, key)
    before = stack.upstream.stats()["batches_created"]
    lines = [chat_line(f"b{i}", model="batched", max_tokens=2) for i in range(12)]
    batch = client.batches.create(
        input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = ended(client, batch.id)
    counts = done.request_counts
    assert counts.completed + counts.failed == 12 and counts.failed > 0 and counts.completed > 0
    assert stack.upstream.stats()["batches_created"] == before
    errors = file_lines(client, done.error_file_id)
    assert len(errors) == counts.failed
    assert all(e["response"]["body"]["error"]["code"] == "budget_exceeded" for e in errors)
    total = sum(r["cost"] for r in rows_of(stack, batch.id, counts.completed) if r["status"] == "success")
    assert total <= 1e-4
    eventually_sync(lambda: key_info(stack, key)["spend"] == pytest.approx(total, rel=1e-9), "the spend settled", timeout=30)


def test_the_edge_killed_during_the_submit_finds_the_providers_batch_instead_of_submitting_again(stack: Stack) -> None:
    client = stack.client(timeout=30)
    before = stack.upstream.stats()
    httpx.post(
        f"http://127.0.0.1:{stack.upstream.port}/_fake/batch_delay", json={"seconds": 1.0, "create_seconds": 4.0}, timeout=5
    ).raise_for_status()
    lines = [chat_line(f"s{i}", model="batched", max_tokens=2) for i in range(2)]
    batch = client.batches.create(
        input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    # The worker uploaded the lines and is creating the provider's batch (4 s): the edge dies now,
    # its claim written, the provider's id never recorded.
    eventually_sync(
        lambda: stack.upstream.stats()["batch_files"] > before["batch_files"],
        "the lines to be uploaded",
        timeout=30,
        interval=0.05,
    )
    stack.edge.kill()
    stack.edge = stack._start("edge", "gateway")
    wait_ready(stack.base_url, 45)
    done = ended(client, batch.id)
    assert done.status == "completed", done
    assert stack.upstream.stats()["batches_created"] == before["batches_created"] + 1  # found, not submitted again
    assert "batch_handoff_found" in stack.logs()
    output = file_lines(client, done.output_file_id)
    assert sorted(o["custom_id"] for o in output) == ["s0", "s1"]
    rows = rows_of(stack, batch.id, 2)
    assert sorted(r["client_request_id"] for r in rows) == [f"{batch.id}-{i}" for i in range(2)]
