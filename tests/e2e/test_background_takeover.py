"""A background job outlives the edge that ran it (issue 16: "an edge restarted mid-job loses no
job"): two edges; a streamed background response (native, and translated from chat by the edge)
or a resumable chat stream is read to event N on edge A, edge A is SIGKILLed (its process group:
Granian's workers too) while the upstream is still answering; on edge B, which takes the job over
once A's lease lapsed, the official `openai` SDK's `responses.retrieve(id, stream=True,
starting_after=N)` (or `Last-Event-ID` on the chat stream) gets every event after N once, to the
end; the upstream was called once; one usage row holds the whole answer's tokens (and a budgeted
key's reservation, made on A, ends once, in that row's cost); B reads the response completed. An edge stopped (SIGTERM) with a job still running hands it over once its
shutdown grace is past: the next edge carries it on at once, the same way."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from llmgw.contracts import BudgetLedger
from tests.e2e.responses_stack import ANTHROPIC_KEY, start_stack
from tests.e2e.sse import sse_events
from tests.e2e.stack import MASTER_KEY, Stack
from tests.e2e.test_lease_outcomes import Key
from tests.procs import FakeUpstream, Proc, component, free_port, log_events, wait_ready
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

SLOWER_NATIVE, SLOWER_CHAT = "slower-native", "slower-chat"  # 400 ms between text deltas
UPSTREAM_MODEL = "fake-chunk-delay-400"
TEXT = "w0 w1 w2 w3 w4 w5 w6 w7"  # the fake's whole answer (8 words)
LEASE = "2"  # seconds: a killed edge's jobs are taken over about this long after its last renewal


@pytest.fixture(scope="module")
def fake_anthropic(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("anthropic"), ANTHROPIC_KEY, module="bench.fake_anthropic").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, fake_anthropic, tmp_path_factory: pytest.TempPathFactory):
    env = {"LLMGW_JOB_LEASE_SECONDS": LEASE, "LLMGW_JOB_POLL_SECONDS": "0.3", "LLMGW_SHUTDOWN_GRACE": "1"}
    s = start_stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2etakeover", upstream, fake_anthropic, env)
    yield s
    s.stop()


class EdgeB:
    def __init__(self, stack: Stack) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: Proc = component("edge-b", "gateway", {**stack.env, "LLMGW_PORT": str(port)}, stack.root).start()
        stack.procs.append(self.proc)
        wait_ready(self.base_url, 45)

    def client(self, key: str = MASTER_KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def edges(stack: Stack) -> Iterator[tuple[openai.OpenAI, EdgeB]]:
    """Edge A (the stack's, killed by the test, started again after it) and a second edge B."""
    b = EdgeB(stack)
    yield openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=MASTER_KEY, max_retries=0), b
    assert stack.edge is not None
    stack.procs.remove(stack.edge)
    stack.edge = stack._start("edge", "gateway")
    wait_ready(stack.base_url, 45)
    b.proc.stop()
    stack.procs.remove(b.proc)


def calls(upstream: FakeUpstream) -> int:
    return upstream.stats()["by_model"].get(UPSTREAM_MODEL, 0)


def one_usage_row(stack: Stack, request_id: str) -> dict:
    row = stack.usage_rows([request_id], timeout=30)[request_id]
    rows = stack.query("SELECT count() AS n FROM usage WHERE request_id = {id:String}", {"id": request_id})
    assert rows[0]["n"] == 1
    return row


def read_to_first_word(sdk: openai.OpenAI, model: str, meanwhile: Callable[[], None] = lambda: None) -> list:
    """A streamed background response's events read up to its first word (seven more to come,
    400 ms apart); `meanwhile` is done before the connection closes."""
    first: list = []
    with sdk.responses.with_streaming_response.create(
        model=model, input="hello there friend", background=True, stream=True
    ) as raw:
        for event in raw.parse():
            first.append(event)
            if event.type == "response.output_text.delta":
                break
        meanwhile()
    return first


@pytest.mark.parametrize("model", [SLOWER_NATIVE, SLOWER_CHAT])
def test_a_background_stream_goes_on_on_another_edge_when_its_edge_is_killed(
    stack: Stack, upstream: FakeUpstream, edges: tuple[openai.OpenAI, EdgeB], model: str
) -> None:
    _, edge_b = edges
    key = Key(stack)  # a budgeted key: its reservation, made on edge A, ends once all the same
    sdk_a = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key.key, max_retries=0)
    before = calls(upstream)
    assert stack.edge is not None
    first = read_to_first_word(sdk_a, model, stack.edge.kill)  # edge A dies mid-answer (SIGKILL, its process group)
    response_id = first[0].response.id
    cut = first[-1].sequence_number
    sdk_b = edge_b.client(key.key)
    rest = list(sdk_b.responses.retrieve(response_id, stream=True, starting_after=cut))
    events = first + rest
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(numbers))), numbers  # every event once: no gap, no duplicate
    assert rest[-1].type == "response.completed", rest[-1]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == rest[-1].response.output_text == TEXT
    assert calls(upstream) == before + 1  # the upstream was called once
    done = sdk_b.responses.retrieve(response_id)
    assert done.status == "completed" and done.output_text == TEXT
    request_id = "req-" + response_id.removeprefix("resp_")
    row = one_usage_row(stack, request_id)
    assert row["status"] == "success"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (done.usage.input_tokens, done.usage.output_tokens)
    assert row["completion_tokens"] == len(TEXT.split())

    def settled() -> BudgetLedger | None:  # metering settles it from the usage event: once
        led = key.ledger()
        return led if request_id not in led.reservations and led.spent == pytest.approx(row["cost"], abs=1e-12) else None

    assert row["cost"] > 0
    eventually_sync(settled, "the key's reservation to end in its spend", 20)
    # read again from the start on B, once it is over: the same events
    again = list(sdk_b.responses.retrieve(response_id, stream=True))
    assert [e.sequence_number for e in again] == numbers


LOST = ("background_job_lost", "background_job_written_elsewhere", "background_job_taken_elsewhere")


@pytest.mark.parametrize("model", [SLOWER_NATIVE, SLOWER_CHAT])
def test_an_edge_that_stalled_past_its_lease_leaves_the_job_to_the_edge_that_took_it(
    stack: Stack, upstream: FakeUpstream, edges: tuple[openai.OpenAI, EdgeB], model: str
) -> None:
    """Edge A stops (SIGSTOP) mid-answer, alive, its connections open; edge B takes the job over
    once A's lease lapsed; A goes on (SIGCONT) with the worker's replies that waited for it while
    B writes the same job's events. Each event is kept once and a reader on B reads the answer
    whole, its items' ids the same throughout; A stops its copy of the job, running on."""
    _, edge_b = edges
    key = Key(stack)
    sdk_a = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key.key, max_retries=0)
    before = calls(upstream)
    assert stack.edge is not None
    edge_a = stack.edge
    first = read_to_first_word(sdk_a, model, edge_a.pause)
    response_id, cut = first[0].response.id, first[-1].sequence_number
    request_id = "req-" + response_id.removeprefix("resp_")
    try:
        eventually_sync(
            lambda: log_events(edge_b.proc.output(), "background_job_taken_over", request_id=request_id),
            "edge B to take the job over",
            15,
        )
    finally:
        edge_a.resume()  # (the answer still has words to come: both edges have replies to write)
    sdk_b = edge_b.client(key.key)
    rest = list(sdk_b.responses.retrieve(response_id, stream=True, starting_after=cut))
    events = first + rest
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(numbers))), numbers
    assert rest[-1].type == "response.completed", rest[-1]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == rest[-1].response.output_text == TEXT
    item_id = rest[-1].response.output[0].id
    assert {e.item_id for e in events if hasattr(e, "item_id")} == {item_id}  # one message, one id
    again = list(sdk_b.responses.retrieve(response_id, stream=True))  # all that is kept, from the first
    assert [e.sequence_number for e in again] == numbers
    assert [e.model_dump() for e in again[cut + 1 :]] == [e.model_dump() for e in rest]
    assert calls(upstream) == before + 1
    done = sdk_b.responses.retrieve(response_id)
    assert done.status == "completed" and done.output_text == TEXT
    row = one_usage_row(stack, request_id)
    assert (row["status"], row["completion_tokens"]) == ("success", len(TEXT.split()))
    # Edge A learnt it lost the job and stopped its copy, without ending it nor failing it
    eventually_sync(
        lambda: [e for name in LOST for e in log_events(edge_a.output(), name) if response_id in e.values()],
        "edge A to stop its copy of the job",
        15,
    )
    assert edge_a.running
    assert not log_events(edge_a.output(), "background_end_failed")
    assert sdk_b.responses.retrieve(response_id).status == "completed"
    assert one_usage_row(stack, request_id)["cost"] == row["cost"]

    def settled() -> BudgetLedger | None:
        led = key.ledger()
        return led if request_id not in led.reservations and led.spent == pytest.approx(row["cost"], abs=1e-12) else None

    eventually_sync(settled, "the key's reservation to end once, in its spend", 20)
    edge_a.kill()  # (the fixture starts edge A again)


def test_a_stopping_edge_hands_its_background_stream_over(
    stack: Stack, upstream: FakeUpstream, edges: tuple[openai.OpenAI, EdgeB]
) -> None:
    sdk_a, edge_b = edges
    before = calls(upstream)
    first = read_to_first_word(sdk_a, SLOWER_NATIVE)
    assert stack.edge is not None and stack.edge.popen is not None
    stack.edge.popen.send_signal(signal.SIGTERM)  # its grace (1 s) is shorter than the answer's rest
    assert stack.edge.popen.wait(30) == 0
    assert log_events(stack.edge.output(), "background_jobs_handed_over_at_shutdown")
    response_id, cut = first[0].response.id, first[-1].sequence_number
    sdk_b = edge_b.client()
    rest = list(sdk_b.responses.retrieve(response_id, stream=True, starting_after=cut))
    numbers = [e.sequence_number for e in first + rest]
    assert numbers == list(range(len(numbers))), numbers
    assert rest[-1].type == "response.completed"
    assert "".join(e.delta for e in first + rest if e.type == "response.output_text.delta") == TEXT
    assert calls(upstream) == before + 1
    assert sdk_b.responses.retrieve(response_id).status == "completed"
    row = one_usage_row(stack, "req-" + response_id.removeprefix("resp_"))
    assert (row["status"], row["completion_tokens"]) == ("success", len(TEXT.split()))


def test_a_resumable_chat_stream_goes_on_on_another_edge_when_its_edge_is_killed(
    stack: Stack, upstream: FakeUpstream, edges: tuple[openai.OpenAI, EdgeB]
) -> None:
    sdk_a, edge_b = edges
    before = calls(upstream)
    first: list[tuple[int | None, str]] = []
    with sdk_a.chat.completions.with_streaming_response.create(
        model=SLOWER_CHAT,
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-llmgw-resumable": "true"},
    ) as raw:
        request_id = raw.headers["x-request-id"]
        for event in sse_events(raw.iter_lines()):
            first.append(event)
            if "w0" in event[1]:  # the first word: seven more to come, 400 ms apart
                break
        assert stack.edge is not None
        stack.edge.kill()
    last = first[-1][0]
    with httpx.stream(
        "GET",
        f"{edge_b.base_url}/v1/chat/completions/{request_id}/stream",
        headers={"authorization": f"Bearer {MASTER_KEY}", "last-event-id": str(last)},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        rest = list(sse_events(response.iter_lines()))
    ids = [i for i, _ in first + rest]
    assert ids == list(range(len(ids))), ids  # no gap, no duplicate
    assert rest[-1][1] == "[DONE]"
    text = ""
    usage = None
    for _, data in first + rest:
        if data != "[DONE]":
            chunk = json.loads(data)
            assert "error" not in chunk, chunk
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                text += (choice.get("delta") or {}).get("content") or ""
    assert text == TEXT
    assert calls(upstream) == before + 1
    row = one_usage_row(stack, request_id)
    assert row["status"] == "success" and usage is not None
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    # the stream's record on B says it is over
    again = httpx.get(
        f"{edge_b.base_url}/v1/chat/completions/{request_id}/stream",
        headers={"authorization": f"Bearer {MASTER_KEY}", "last-event-id": str(ids[-1] - 1)},
        timeout=30,
    )
    assert again.status_code == 200 and list(sse_events(again.text.splitlines())) == [(ids[-1], "[DONE]")]
