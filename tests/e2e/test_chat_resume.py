"""Resumable chat completion streams (`x-llmgw-resumable: true`) with the official `openai` SDK:
each event carries `id: N`; the connection is closed mid-answer, the generation goes on, and
`GET /v1/chat/completions/{x-request-id}/stream` with `Last-Event-ID` sends exactly the events
after it, each once, to the end (the upstream called once, one usage row of the whole answer);
other keys cannot resume it (404); without the header a stream is what it always was."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.e2e.responses_stack import new_key
from tests.e2e.sse import content_of, sse_events
from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import FakeUpstream

pytestmark = pytest.mark.e2e

CHUNKY = "chunky"  # 60 ms between chunks
RESUMABLE = {"x-llmgw-resumable": "true"}


def test_a_resumable_chat_stream_resumes_after_a_cut(stack: Stack, upstream: FakeUpstream) -> None:
    sdk = stack.client()
    calls = upstream.stats()["by_model"].get("fake-chunk-delay-60", 0)
    first: list[tuple[int | None, str]] = []
    with sdk.chat.completions.with_streaming_response.create(
        model=CHUNKY,
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        max_tokens=30,
        stream_options={"include_usage": True},
        extra_headers=RESUMABLE,
    ) as raw:
        request_id = raw.headers["x-request-id"]
        for event in sse_events(raw.iter_lines()):
            first.append(event)
            if len(first) == 6:
                break
    # the connection is closed here, mid-answer
    last = first[-1][0]
    assert [i for i, _ in first] == list(range(6))
    with httpx.stream(
        "GET",
        f"{stack.base_url}/v1/chat/completions/{request_id}/stream",
        headers={"authorization": f"Bearer {MASTER_KEY}", "last-event-id": str(last)},
        timeout=30,
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        rest = list(sse_events(response.iter_lines()))
    ids = [i for i, _ in first + rest]
    assert ids == list(range(len(ids)))  # no gap, no duplicate
    assert rest[-1][1] == "[DONE]"
    assert content_of([data for _, data in first + rest]) == " ".join(f"w{i}" for i in range(30))
    assert upstream.stats()["by_model"]["fake-chunk-delay-60"] == calls + 1
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["completion_tokens"]) == ("success", 30)
    # another key finds nothing to resume
    other = httpx.get(
        f"{stack.base_url}/v1/chat/completions/{request_id}/stream",
        headers={"authorization": f"Bearer {new_key(stack)}"},
        timeout=10,
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    # nor is it a stored response
    assert (
        httpx.get(
            f"{stack.base_url}/v1/responses/chat-{request_id}", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10
        ).status_code
        == 404
    )


def test_a_plain_stream_has_no_ids_and_is_not_resumable(stack: Stack) -> None:
    with stack.client().chat.completions.with_streaming_response.create(
        model=CHUNKY, messages=[{"role": "user", "content": "hello"}], stream=True, max_tokens=3
    ) as raw:
        request_id = raw.headers["x-request-id"]
        lines = list(raw.iter_lines())
    assert "data: [DONE]" in lines and not any(line.startswith("id:") for line in lines)
    response = httpx.get(
        f"{stack.base_url}/v1/chat/completions/{request_id}/stream",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )
    assert response.status_code == 404


def test_a_key_can_make_its_streams_resumable_and_a_request_can_still_ask_for_cancel(stack: Stack) -> None:
    key = new_key(stack, metadata={"resumable_streams": True})
    sdk = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
    first: list[tuple[int | None, str]] = []
    with sdk.chat.completions.with_streaming_response.create(
        model=CHUNKY, messages=[{"role": "user", "content": "hello"}], stream=True, max_tokens=12
    ) as raw:
        request_id = raw.headers["x-request-id"]
        for event in sse_events(raw.iter_lines()):
            first.append(event)
            if len(first) == 3:
                break
    with httpx.stream(
        "GET",
        f"{stack.base_url}/v1/chat/completions/{request_id}/stream",
        headers={"authorization": f"Bearer {key}", "last-event-id": str(first[-1][0])},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        rest = list(sse_events(response.iter_lines()))
    assert [i for i, _ in first + rest] == list(range(len(first) + len(rest)))
    assert content_of([data for _, data in first + rest]) == " ".join(f"w{i}" for i in range(12))
    assert stack.usage_rows([request_id])[request_id]["completion_tokens"] == 12

    # `x-llmgw-resumable: false` on one request: today's stream, cancelled when its client goes.
    with sdk.chat.completions.with_streaming_response.create(
        model=CHUNKY,
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        max_tokens=3,
        extra_headers={"x-llmgw-resumable": "false"},
    ) as raw:
        plain_id = raw.headers["x-request-id"]
        lines = list(raw.iter_lines())
    assert "data: [DONE]" in lines and not any(line.startswith("id:") for line in lines)
    missing = httpx.get(
        f"{stack.base_url}/v1/chat/completions/{plain_id}/stream", headers={"authorization": f"Bearer {key}"}, timeout=10
    )
    assert missing.status_code == 404
