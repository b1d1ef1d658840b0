"""A background response's job (gateway/responses/background.py) on its own: the answer as the
pipeline writes it, cut anywhere, becomes whole events, each stored once and in order; its records
move queued -> in_progress -> its end; a cancel, a failure before the answer and an upstream error
answer each end it as OpenAI says; a response its edge left reads failed past its deadline."""

from __future__ import annotations

import time
from types import SimpleNamespace

import msgspec
import pytest

from gateway.background import CANCELLED, BackgroundJobs
from gateway.errors import GatewayError
from gateway.responses.background import ORPHANED_AFTER, BackgroundResponse, as_seen
from gateway.responses.items import input_items
from gateway.responses.request import parse_responses_request
from gateway.responses.route import ResponsesCall
from llmgw.contracts import Caller, ResponseEvent, ResponseStreamEnd, StoredResponse, Subjects

pytestmark = pytest.mark.unit


class Store:
    def __init__(self) -> None:
        self.records: list[StoredResponse] = []

    def keep(self, record: StoredResponse, replace: bool = False) -> None:
        assert replace
        self.records.append(record)

    async def written(self, response_id: str) -> None:
        return


class Events:
    def __init__(self) -> None:
        self.entries: list[object] = []

    async def append(self, response_id: str, entry: object, after: int) -> int:
        assert after == len(self.entries)  # (each entry after the one its writer stored last)
        self.entries.append(entry)
        return len(self.entries)


class Leases:
    async def holds(self, request_id: str, owner: str) -> bool:
        return True


def an_edge(events: Events) -> SimpleNamespace:
    return SimpleNamespace(
        response_events=events,
        jobs=BackgroundJobs(Subjects("unit")),
        job_leases=Leases(),
        dispatcher=SimpleNamespace(edge_id="edge-1"),
    )


def job(stream: bool) -> tuple[BackgroundResponse, Store, Events]:
    body = msgspec.json.encode({"model": "m", "input": "hi", "background": True, "stream": stream})
    request, fields = parse_responses_request(body)
    store, events = Store(), Events()
    state = ResponsesCall(request, fields, input_items(request.input or ""), store)  # type: ignore[arg-type]
    state.caller = Caller(key_hash="k" * 64, user_id="u")
    bg = BackgroundResponse(state, an_edge(events), "resp_abc", "m")  # type: ignore[arg-type]
    state.background = bg
    bg.queued("req-abc", time.time() + 60)
    return bg, store, events


def sse(kind: str, number: int, **fields: object) -> bytes:
    event = {"type": kind, **fields, "sequence_number": number}
    return b"event: " + kind.encode() + b"\ndata: " + msgspec.json.encode(event) + b"\n\n"


def answer(response_id: str = "resp_upstream") -> bytes:
    created = {"id": response_id, "object": "response", "status": "in_progress", "output": []}
    done = {**created, "status": "completed", "output": [{"type": "message"}]}
    return b"".join(
        [
            sse("response.created", 0, response=created),
            sse("response.output_text.delta", 1, delta="w0"),
            sse("response.output_text.delta", 2, delta=" w1"),
            sse("response.completed", 3, response=done),
        ]
    )


@pytest.mark.parametrize("cut", [1, 7, 13, 64])
async def test_events_cut_anywhere_are_stored_whole_once_in_order(cut: int) -> None:
    bg, store, events = job(stream=True)
    await bg.send({"type": "http.response.start", "status": 200, "headers": []})
    data = answer()
    pieces = [data[i : i + cut] for i in range(0, len(data), cut)]
    for i, piece in enumerate(pieces):
        await bg.send({"type": "http.response.body", "body": piece, "more_body": i < len(pieces) - 1})
    await bg.ended(None, None)
    stored = [e for e in events.entries if isinstance(e, ResponseEvent)]
    assert [e.sequence_number for e in stored] == [0, 1, 2, 3]
    assert b"".join(e.data for e in stored) == data
    assert events.entries[-1] == ResponseStreamEnd("completed")
    statuses = [r.response["status"] for r in store.records]
    assert statuses == ["queued", "in_progress", "completed"]
    last = store.records[-1]
    assert last.response["id"] == "resp_abc" and last.response["background"] is True
    assert (last.request_id, last.streamed) == ("req-abc", True)


async def test_a_cancelled_response_ends_cancelled() -> None:
    bg, store, events = job(stream=True)
    await bg.send({"type": "http.response.start", "status": 200, "headers": []})
    await bg.send({"type": "http.response.body", "body": answer()[:200], "more_body": True})
    await bg.ended(None, CANCELLED)
    assert store.records[-1].response["status"] == "cancelled"
    assert events.entries[-1] == ResponseStreamEnd("cancelled")


async def test_a_failure_before_the_answer_fails_it_with_an_event() -> None:
    bg, store, events = job(stream=True)
    await bg.ended(GatewayError(429, "budget exceeded", "rate_limit_error", "budget_exceeded"), None)
    response = store.records[-1].response
    assert response["status"] == "failed"
    assert response["error"] == {"code": "rate_limit_exceeded", "message": "budget exceeded"}
    failed = events.entries[-2]
    assert isinstance(failed, ResponseEvent) and b"response.failed" in failed.data and failed.sequence_number == 0


async def test_an_upstream_error_answer_fails_it() -> None:
    bg, store, events = job(stream=False)
    await bg.send({"type": "http.response.start", "status": 400, "headers": []})
    await bg.send({"type": "http.response.body", "body": b'{"error": {"message": "bad input"}}'})
    await bg.ended(None, None)
    assert store.records[-1].response["error"]["message"] == "bad input"
    assert events.entries == []  # (not streamed: no events kept)


def test_a_response_its_edge_left_reads_failed_past_its_deadline() -> None:
    now = time.time()
    response = {"id": "resp_x", "status": "in_progress"}
    assert as_seen(response, now) == response
    assert as_seen(response, now - ORPHANED_AFTER - 1)["status"] == "failed"
    assert as_seen({**response, "status": "completed"}, now - 1000)["status"] == "completed"
    assert as_seen(response, None) == response
