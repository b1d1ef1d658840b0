"""A batch yields to interactive traffic: while interactive requests come, its lines reach the
upstream one at a time (LLMGW_BATCH_YIELD_LINES, on the edge and on the worker); once they stop,
the batch goes on at its full LLMGW_BATCH_CONCURRENCY. Counted at the fake upstream, which keeps
the most calls of each model it answered at once."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.e2e.test_batches import chat_line, until_ended, upload
from tests.procs import FakeUpstream
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

CONCURRENCY = 4
BATCH_MODEL = "fake-slow-301"  # what the batch's lines call upstream (slow: lines in flight overlap)
INTERACTIVE_MODEL = "fake-slow-51"
LINES = 24


def config(upstream: FakeUpstream) -> str:
    groups = {"batchy": BATCH_MODEL, "chatty": INTERACTIVE_MODEL}
    lines = ["model_list:"]
    for name, model in groups.items():
        lines += [
            f"  - model_name: {name}",
            "    params:",
            f"      model: openai/{model}",
            f"      api_base: {upstream.base_url}",
            "      api_key: os.environ/E2E_UPSTREAM_KEY",
        ]
    lines += ["general_settings:", "  master_key: os.environ/E2E_MASTER_KEY"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    env = {"LLMGW_BATCH_CONCURRENCY": str(CONCURRENCY), "LLMGW_BATCH_POLL_SECONDS": "0.2"}
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2ebatchyield", upstream, env, config(upstream)).start()
    yield s
    s.stop()


class Chatter:
    """Interactive chat requests one after the other on `threads` connections, until `stop`."""

    def __init__(self, stack: Stack, threads: int) -> None:
        self.url = f"{stack.base_url}/v1/chat/completions"
        self.answered = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._chat, daemon=True) for _ in range(threads)]

    def _chat(self) -> None:
        body = {"model": "chatty", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        with httpx.Client(headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as client:
            while not self._stop.is_set():
                answer = client.post(self.url, json=body)
                if answer.status_code == 200:
                    self.answered += 1
                else:
                    self.failed.append(answer.text[:200])

    def __enter__(self) -> Chatter:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def most_in_flight(upstream: FakeUpstream) -> int:
    return upstream.stats()["most_in_flight"].get(BATCH_MODEL, 0)


def reset(upstream: FakeUpstream) -> None:
    httpx.post(f"{upstream.root_url}/_fake/reset", timeout=5).raise_for_status()


def test_a_batch_goes_one_line_at_a_time_beside_interactive_traffic_and_at_full_concurrency_alone(
    stack: Stack, upstream: FakeUpstream
) -> None:
    client = stack.client()
    file = upload(client, [chat_line(f"line-{i}", model="batchy") for i in range(LINES)])
    with Chatter(stack, threads=2) as chatter:
        eventually_sync(lambda: chatter.answered >= 4, "interactive answers", timeout=30)
        reset(upstream)
        batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")

        def lines_done(least: int):
            return lambda: client.batches.retrieve(batch.id).request_counts.completed >= least

        eventually_sync(lines_done(4), "four lines done beside interactive traffic", timeout=60, interval=0.2)
        assert most_in_flight(upstream) == 1  # one line in flight at a time, never more
        assert chatter.answered > 4 and not chatter.failed
    done_with_traffic = client.batches.retrieve(batch.id).request_counts.completed
    assert done_with_traffic < LINES - 2 * CONCURRENCY, "the batch was nearly over before the traffic stopped"
    reset(upstream)
    ended = until_ended(client, batch.id)
    assert ended.status == "completed" and ended.request_counts.completed == LINES
    assert most_in_flight(upstream) == CONCURRENCY  # alone, the batch's full concurrency
