"""A background response (`POST /v1/responses` with `background: true`): the pipeline's job for it.

The client is answered as soon as the request is on the work queue: the response object with
`status: "queued"` (stored first, so a `GET` at once finds it), or, with `stream: true`, the
response's events read back from the response events stream (gateway.responses.events) as the job
writes them: the client going away stops its reading, never the generation. The upstream is
always asked for a stream, so a cancelled response is metered up to where it was stopped. The job
reads the answer as the encoders write it (server-sent events), keeps the record up to date
(`queued` -> `in_progress` -> `completed` | `incomplete` | `failed` | `cancelled`) and, when
streamed, appends each event to the response's subject, then its end.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.asgi_io import SSE_HEADERS, Message, Receive, Send, send_json
from gateway.background import CANCELLED, SHUTDOWN, JobTaken
from gateway.errors import GatewayError
from gateway.responses.event_writer import EventWriter, lease_held
from gateway.responses.events import EventSplitter, Kept, relay_events
from gateway.responses.store import new_record
from gateway.responses.wire import response_object
from gateway.routes import Headers
from llmgw.contracts import ErrorCode, JobKind

if TYPE_CHECKING:
    from gateway.edge import Edge
    from gateway.responses.route import ResponsesCall

TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# A response still queued or in progress this long past its deadline was left by an edge that
# went away (its job ends at the deadline at the latest).
ORPHANED_AFTER = 10.0


class _Event(msgspec.Struct):
    type: str = ""
    sequence_number: int | None = None
    response: dict[str, Any] | None = None


class _Error(msgspec.Struct):
    message: str = ""


class _ErrorBody(msgspec.Struct):
    error: _Error | None = None


_event_decoder = msgspec.json.Decoder(_Event)
_error_decoder = msgspec.json.Decoder(_ErrorBody)
_encoder = msgspec.json.Encoder()


def failed_response(response: dict[str, Any], message: str, code: str | None = None) -> dict[str, Any]:
    """`response` failed: status `failed` with a response error (whose codes are OpenAI's own)."""
    failed_code = "rate_limit_exceeded" if code in (ErrorCode.RATE_LIMITED, ErrorCode.BUDGET_EXCEEDED) else "server_error"
    return {**response, "status": "failed", "error": {"code": failed_code, "message": message}}


def as_seen(response: dict[str, Any], deadline: float | None) -> dict[str, Any]:
    """A stored background response as a client reads it: one still queued or in progress long
    after its deadline was left by an edge that stopped, and has failed."""
    if deadline is None or response.get("status") in TERMINAL or time.time() < deadline + ORPHANED_AFTER:
        return response
    return failed_response(response, "the gateway stopped serving this response before it was complete")


class BackgroundResponse:
    """One background response from its queued record to its end (gateway.routes.Background)."""

    kind = JobKind.RESPONSE

    def __init__(self, state: ResponsesCall, edge: Edge, response_id: str, model: str) -> None:
        self.key = response_id
        self.state = state
        self.store = state.store
        self.events = edge.response_events
        self.streamed = bool(state.request.stream)
        self.request_id = ""
        self.deadline = 0.0
        self.created_at = time.time()
        self.snapshot = response_object(state.request, model, response_id, int(self.created_at), status="queued", output=[])
        self.final: dict[str, Any] | None = None  # the whole response, once the answer ended (ResponsesCall.keep)
        self.status = 200  # of the answer as the pipeline wrote it
        self.error_body = b""
        self._events = EventSplitter()
        self._started = False
        self._evented_end = False  # a final event went out
        self.last_sequence = -1
        self.model = model
        self.writer = EventWriter(edge.response_events, edge.jobs, response_id, lambda: lease_held(edge, self.request_id))

    # ---- the records -----------------------------------------------------------------------------

    def _keep(self, response: dict[str, Any]) -> None:
        state = self.state
        assert state.caller is not None  # (known since the pipeline's resolve)
        response = {**response, "id": self.key, "background": True}
        record = new_record(
            response,
            state.caller,
            state.previous,
            state.input,
            self.created_at,
            request_id=self.request_id,
            deadline=self.deadline,
            streamed=self.streamed,
        )
        self.store.keep(record, replace=True)

    def queued(self, request_id: str, deadline: float) -> None:
        self.request_id, self.deadline = request_id, deadline
        self._keep(self.snapshot)

    def resumed(self, request_id: str, deadline: float, created_at: float, kept: Kept) -> None:
        self.request_id, self.deadline, self.created_at = request_id, deadline, created_at
        self.snapshot = response_object(self.state.request, self.model, self.key, int(created_at), status="queued", output=[])
        self.writer.resumed(kept)

    async def accepted(self, send: Send, receive: Receive, headers: Headers) -> None:
        answer = _encoder.encode(self.snapshot)  # (queued: the job may move it on during the write)
        await self.store.written(self.key)  # a GET at once finds it
        if not self.streamed:
            await send_json(send, 200, answer, headers)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})

        await relay_events(self.events, self.key, self.deadline + ORPHANED_AFTER, send, receive)

    # ---- the answer, as the pipeline writes it -----------------------------------------------------

    async def receive(self) -> Message:
        await asyncio.Future()  # no client to go away: the job ends when its answer does, or is cancelled
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            return
        data: bytes = message.get("body", b"")
        if self.status >= 400:  # a whole error answer (the upstream refused the request)
            self.error_body += data
            return
        for event in self._events.feed(data, message.get("more_body", False)):
            await self._event(event)

    async def _event(self, block: bytes) -> None:
        data = b"".join(line[5:].strip() for line in block.splitlines() if line.startswith(b"data:"))
        try:
            event = _event_decoder.decode(data)
        except msgspec.MsgspecError:
            event = _Event()
        if not self._started:
            self._started = True
            self._keep({**self.snapshot, "status": "in_progress"})
        if event.response is not None:
            self.snapshot = {**event.response, "id": self.key, "background": True}
        number = event.sequence_number if event.sequence_number is not None else self.last_sequence + 1
        self.last_sequence = max(self.last_sequence, number)
        if event.type in FINAL_EVENTS:
            self._evented_end = True
            if event.response is not None and self.final is None:
                self.final = event.response
        if self.streamed:
            await self.writer.event(number, block + b"\n\n")

    # ---- the end -----------------------------------------------------------------------------------

    async def ended(self, error: GatewayError | None, reason: str | None) -> None:
        snapshot = self.snapshot
        if reason == CANCELLED:
            response = {**snapshot, "status": "cancelled"}
        elif reason == SHUTDOWN:
            response = failed_response(snapshot, "the gateway stopped before this response was complete")
        elif error is not None:
            response = failed_response(snapshot, error.message, error.code)
        elif self.status >= 400:
            try:
                problem = _error_decoder.decode(self.error_body).error
            except msgspec.MsgspecError:
                problem = None
            message = problem.message if problem is not None and problem.message else f"the upstream answered {self.status}"
            response = failed_response(snapshot, message)
        elif self.final is not None:
            response = self.final
        else:
            response = failed_response(snapshot, "the answer ended before it was complete")
        response = {**response, "id": self.key, "background": True}
        await self.writer.check_held()  # (another edge took it over while this one stalled: it ends it)
        self._keep(response)
        await self.store.written(self.key)
        if self.streamed and not self.writer.ended:
            try:
                if not self._evented_end and response["status"] == "failed":
                    number = self.last_sequence + 1
                    event = {"type": "response.failed", "response": response, "sequence_number": number}
                    await self.writer.event(number, b"event: response.failed\ndata: " + _encoder.encode(event) + b"\n\n")
                await self.writer.end(str(response["status"]))
            except JobTaken:
                raise
            except Exception:  # (the bus is gone: readers stop at the deadline)
                pass
