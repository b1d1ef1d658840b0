"""Background responses (`background: true`) with the official `openai` SDK: created, answered at
once as `queued`, polled with `responses.retrieve` until done (one usage row, the answer's);
cancelled mid-answer on a slow upstream (status `cancelled`, the usage so far metered); a
background stream read in part, its connection closed, then resumed with `starting_after`
(exactly the events after it, each once, and the upstream called once); other keys find none of
it (404); an edge killed mid-response: the next edge carries it on (tests/e2e/test_background_takeover.py
has two edges and a stream resumed on the other)."""

from __future__ import annotations

import signal

import httpx
import openai
import pytest

from tests.e2e.responses_stack import ANTHROPIC_KEY, new_key, start_stack
from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import FakeUpstream, wait_ready
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

NATIVE, TRANSLATED = "gpt-4o", "claude"
SLOW_NATIVE, SLOW_CHAT = "slow-native", "slow-chat"
TEXT = "w0 w1 w2 w3 w4 w5 w6 w7"


@pytest.fixture(scope="module")
def fake_anthropic(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("anthropic"), ANTHROPIC_KEY, module="bench.fake_anthropic").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, fake_anthropic, tmp_path_factory: pytest.TempPathFactory):
    s = start_stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2ebackground", upstream, fake_anthropic)
    yield s
    s.stop()


def client(stack: Stack, key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)


def settled(sdk: openai.OpenAI, response_id: str, timeout: float = 30):
    def done():
        response = sdk.responses.retrieve(response_id)
        return response if response.status not in ("queued", "in_progress") else None

    return eventually_sync(done, f"response {response_id} over", timeout=timeout, interval=0.1)


def request_id_of(response_id: str) -> str:
    return "req-" + response_id.removeprefix("resp_")


@pytest.mark.parametrize("model", [NATIVE, TRANSLATED])
def test_a_background_response_is_polled_until_completed(stack: Stack, model: str) -> None:
    sdk = client(stack)
    raw = sdk.responses.with_raw_response.create(model=model, input="hello there friend", background=True)
    created = raw.parse()
    assert created.status == "queued" and created.background is True and created.output == []
    assert created.id.startswith("resp_")
    request_id = raw.headers["x-request-id"]
    assert request_id == request_id_of(created.id)
    done = settled(sdk, created.id)
    assert done.status == "completed" and done.id == created.id and done.background is True, done
    assert done.output_text == TEXT
    row = stack.usage_rows([request_id])[request_id]
    assert row["status"] == "success"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (done.usage.input_tokens, done.usage.output_tokens)
    rows = stack.query("SELECT count() AS n FROM usage WHERE request_id = {id:String}", {"id": request_id})
    assert rows[0]["n"] == 1


def test_background_needs_store(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client(stack).responses.create(model=NATIVE, input="hi", background=True, store=False)
    assert refused.value.body["param"] == "store"


@pytest.mark.parametrize("model", [SLOW_CHAT, SLOW_NATIVE])
def test_a_background_response_is_cancelled_and_metered(stack: Stack, model: str) -> None:
    sdk = client(stack)
    created = sdk.responses.create(model=model, input="tell me a long story", background=True, max_output_tokens=200)

    def started():
        response = sdk.responses.retrieve(created.id)
        return response if response.status == "in_progress" else None

    eventually_sync(started, "the response in progress", timeout=20, interval=0.05)
    cancelled = sdk.responses.cancel(created.id)
    assert cancelled.status == "cancelled" and cancelled.id == created.id
    assert sdk.responses.retrieve(created.id).status == "cancelled"
    assert sdk.responses.cancel(created.id).status == "cancelled"  # (again: as it is)
    request_id = request_id_of(created.id)
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["usage_source"]) == ("cancelled", "estimated"), row
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] < 200  # stopped well before its end


@pytest.mark.parametrize("model", [SLOW_CHAT, SLOW_NATIVE])
def test_a_cancelled_background_stream_meters_what_it_streamed(stack: Stack, model: str) -> None:
    """Cancelled while its stream is read: the stream ends, the tokens streamed so far are metered."""
    sdk = client(stack)
    events: list = []
    with sdk.responses.with_streaming_response.create(
        model=model, input="tell me a long story", background=True, stream=True, max_output_tokens=200
    ) as raw:
        request_id = raw.headers["x-request-id"]
        for event in raw.parse():
            events.append(event)
            if sum(e.type == "response.output_text.delta" for e in events) == 6:
                assert sdk.responses.cancel(events[0].response.id).status == "cancelled"
        # (the stream ends once the cancel went through)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert 6 <= len(deltas) < 200
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(numbers)))
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["usage_source"]) == ("cancelled", "estimated"), row
    # the words streamed (about a token each: "w12 " is four characters), give or take those in flight
    assert len("".join(deltas)) // 4 <= row["completion_tokens"] < 200


def test_a_background_stream_resumes_after_a_cut(stack: Stack, upstream: FakeUpstream) -> None:
    sdk = client(stack)
    calls_before = upstream.stats()["by_model"].get("fake-chunk-delay-100", 0)
    first: list = []
    with sdk.responses.with_streaming_response.create(
        model=SLOW_NATIVE, input="hello there friend", background=True, stream=True, max_output_tokens=30
    ) as raw:
        for event in raw.parse():
            first.append(event)
            if len(first) == 6:
                break  # the connection is closed here, mid-answer
    response_id = first[0].response.id
    assert first[0].response.background is True
    cut = first[-1].sequence_number
    rest = list(sdk.responses.retrieve(response_id, stream=True, starting_after=cut))
    numbers = [e.sequence_number for e in first + rest]
    assert numbers == list(range(len(numbers))), numbers  # no gap, no duplicate
    assert rest[-1].type == "response.incomplete"  # (the fake stops at max_output_tokens: incomplete)
    text = "".join(e.delta for e in first + rest if e.type == "response.output_text.delta")
    assert text == rest[-1].response.output_text == " ".join(f"w{i}" for i in range(30))
    assert upstream.stats()["by_model"].get("fake-chunk-delay-100", 0) == calls_before + 1
    # read again from the start, once it is over: the same events
    again = list(sdk.responses.retrieve(response_id, stream=True))
    assert [e.sequence_number for e in again] == numbers
    assert settled(sdk, response_id).status == "incomplete"


def test_other_keys_find_no_background_response(stack: Stack) -> None:
    sdk = client(stack)
    created = sdk.responses.create(
        model=SLOW_NATIVE, input="hello there friend", background=True, stream=False, max_output_tokens=20
    )
    other = client(stack, new_key(stack))
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.cancel(created.id)
    response = httpx.get(
        f"{stack.base_url}/v1/responses/{created.id}",
        params={"stream": "true", "starting_after": "0"},
        headers={"authorization": f"Bearer {new_key(stack)}"},
        timeout=10,
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert settled(sdk, created.id).status == "incomplete"  # and it went on, untouched (to max_output_tokens)


def test_a_background_response_cancelled_while_queued_is_never_served(stack: Stack, upstream: FakeUpstream) -> None:
    """Its worker busy, a response waits in the queue; cancelled there, it is not served when the
    worker gets to it: one usage row (cancelled, nothing used), the upstream not called for it."""
    for worker in stack.workers:
        worker.stop()
    one_at_a_time = stack.start_worker(LLMGW_WORKER_CONCURRENCY="1")
    sdk = client(stack)
    assert sdk.responses.create(model=NATIVE, input="ready").status == "completed"  # (served by the new worker)
    calls = upstream.stats()["by_model"].get("fake-chunk-delay-100", 0)
    busy = sdk.responses.create(model=SLOW_NATIVE, input="hello there", background=True, max_output_tokens=30)
    eventually_sync(lambda: sdk.responses.retrieve(busy.id).status == "in_progress", "in progress", timeout=20)
    waiting = sdk.responses.create(model=SLOW_NATIVE, input="hello there", background=True, max_output_tokens=30)
    assert sdk.responses.retrieve(waiting.id).status == "queued"
    assert sdk.responses.cancel(waiting.id).status == "cancelled"
    assert settled(sdk, busy.id).status == "incomplete"
    request_id = request_id_of(waiting.id)
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == ("cancelled", 0, 0)
    assert upstream.stats()["by_model"]["fake-chunk-delay-100"] == calls + 1  # only the busy one went upstream
    assert sdk.responses.retrieve(waiting.id).status == "cancelled"
    one_at_a_time.stop()
    stack.start_worker()


# ---- faults (last: it restarts the module's edge) ---------------------------------------------------


def restart_edge(stack: Stack) -> None:
    assert stack.edge is not None
    stack.procs.remove(stack.edge)
    stack.edge = stack._start("edge", "gateway")
    wait_ready(stack.base_url, 45)


def test_a_stopping_edge_lets_its_background_response_finish(stack: Stack) -> None:
    """SIGTERM: the edge stops taking requests but runs its background responses to their end
    (within the shutdown grace) before it leaves."""
    sdk = client(stack)
    created = sdk.responses.create(model=SLOW_NATIVE, input="hello there friend", background=True, max_output_tokens=30)
    eventually_sync(lambda: sdk.responses.retrieve(created.id).status == "in_progress", "in progress", timeout=20)
    assert stack.edge is not None and stack.edge.popen is not None
    stack.edge.popen.send_signal(signal.SIGTERM)
    assert stack.edge.popen.wait(30) == 0
    restart_edge(stack)
    done = sdk.responses.retrieve(created.id)
    assert done.status == "incomplete" and done.output_text == " ".join(f"w{i}" for i in range(30))
    request_id = request_id_of(created.id)
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["completion_tokens"]) == ("success", 30)


def test_an_edge_killed_mid_background_response_is_carried_on_by_the_next(stack: Stack) -> None:
    """The edge running a background response dies: its worker still finishes and meters it (one
    row), and the edge started in its place takes the job over once its lease lapsed (here past
    the request's deadline: the worker's replies are kept, so it reads them still) and writes the
    response's end: the whole answer, read by its owner only."""
    sdk = client(stack)
    created = sdk.responses.create(
        model=SLOW_NATIVE, input="hello there friend", background=True, max_output_tokens=30, extra_body={"timeout": 6}
    )
    eventually_sync(lambda: sdk.responses.retrieve(created.id).status == "in_progress", "in progress", timeout=20)
    assert stack.edge is not None and stack.edge.popen is not None
    stack.edge.kill()  # (Granian's main process and its worker)
    restart_edge(stack)
    request_id = request_id_of(created.id)
    row = stack.usage_rows([request_id], timeout=30)[request_id]
    assert (row["status"], row["completion_tokens"]) == ("success", 30)
    rows = stack.query("SELECT count() AS n FROM usage WHERE request_id = {id:String}", {"id": request_id})
    assert rows[0]["n"] == 1
    done = settled(sdk, created.id, timeout=40)
    assert done.status == "incomplete" and done.output_text == " ".join(f"w{i}" for i in range(30)), done
    assert done.usage is not None and done.usage.output_tokens == 30
    other = client(stack, new_key(stack))
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    # a cancel now finds no edge running it: it stays as it ended
    assert sdk.responses.cancel(created.id).status == "incomplete"
