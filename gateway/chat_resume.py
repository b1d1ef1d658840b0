"""Resumable chat completion streams: a streamed `POST /v1/chat/completions` sent with
`x-llmgw-resumable: true` is run by the edge (gateway.background) rather than by its connection.

Its events are numbered (`id: N` on each), kept in the response events stream as they are
produced (gateway.responses.events) and relayed to the client from there; the client dropping the
connection stops only its reading, and the generation goes on to its end (and is metered so).
`GET /v1/chat/completions/{request id}/stream` with `Last-Event-ID: N` (the `x-request-id` the
answer carried; `last_event_id` in the query works too) sends every event after N, then the
live rest, then ends. Only the key, user or team that made it can resume it. Without the header a
stream is what it always was: a client that goes away cancels it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING

from litestar import Request, get
from litestar.response import Stream

from gateway.asgi_io import SSE_HEADERS, Message, Receive, Scope, Send
from gateway.background import HANDED_OVER
from gateway.errors import GatewayError, error_json
from gateway.responses.background import ORPHANED_AFTER
from gateway.responses.event_writer import EventWriter, lease_held
from gateway.responses.events import EventSplitter, Kept, ResponseEvents, relay_events
from gateway.responses.request import bad_request
from gateway.responses.store import ResponseStore
from gateway.routes import Headers, openai_paths
from llmgw.contracts import Caller, ErrorCode, ErrorType, JobKind, StoredResponse

if TYPE_CHECKING:
    from gateway.auth import Principal
    from gateway.edge import Edge

RESUMABLE_HEADER = b"x-llmgw-resumable"
STREAM_OBJECT = "chat.completion.stream"  # (what its record's `response` says it is)
_TRUE = (b"1", b"true", b"yes", b"on")
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


RESUMABLE_METADATA = "resumable_streams"  # a key's (or its team's) metadata: its streams resumable by default


def wants_resumable(scope: Scope) -> bool | None:
    """What the request's `x-llmgw-resumable` header asks (None: it has none, its key decides)."""
    for name, value in scope["headers"]:
        if name == RESUMABLE_HEADER:
            return value.strip().lower() in _TRUE
    return None


def resumable_by_default(principal: Principal) -> bool:
    """A key whose metadata (or its team's) has `resumable_streams: true` makes every chat stream
    it sends without the header resumable (`x-llmgw-resumable: false` still asks for today's
    cancel when the client goes)."""
    for record in (principal.key, principal.team):
        if record is not None and RESUMABLE_METADATA in record.metadata:
            return record.metadata[RESUMABLE_METADATA] is True
    return False


def record_id(request_id: str) -> str:
    """Its record's key in the responses bucket (apart from the Responses API's `resp_` ids)."""
    return f"chat-{request_id}"


class ResumableChatStream:
    """One resumable chat stream's job (gateway.routes.Background)."""

    kind = JobKind.CHAT

    def __init__(self, edge: Edge, caller: Caller, request_id: str) -> None:
        self.key = request_id
        self.caller = caller
        self.store: ResponseStore = edge.responses
        self.events: ResponseEvents = edge.response_events
        self.deadline = 0.0
        self.created_at = time.time()
        self.status = 200
        self._events = EventSplitter()
        self._next = 0
        self.writer = EventWriter(edge.response_events, edge.jobs, request_id, lambda: lease_held(edge, request_id))

    def _keep(self, status: str) -> None:
        caller = self.caller
        record = StoredResponse(
            id=record_id(self.key),
            key_hash=caller.key_hash,
            user_id=caller.user_id,
            team_id=caller.team_id,
            created_at=self.created_at,
            response={"object": STREAM_OBJECT, "status": status},
            request_id=self.key,
            deadline=self.deadline,
            streamed=True,
        )
        self.store.keep(record, replace=True)

    def queued(self, request_id: str, deadline: float) -> None:
        self.deadline = deadline
        self._keep("in_progress")

    def resumed(self, request_id: str, deadline: float, created_at: float, kept: Kept) -> None:
        self.deadline, self.created_at = deadline, created_at
        self.writer.resumed(kept)

    async def accepted(self, send: Send, receive: Receive, headers: Headers) -> None:
        await self.store.written(record_id(self.key))
        await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})

        await relay_events(self.events, self.key, self.deadline + ORPHANED_AFTER, send, receive)

    async def receive(self) -> Message:
        await asyncio.Future()  # no client to go away
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            return
        for event in self._events.feed(message.get("body", b""), message.get("more_body", False)):
            await self._append(event)

    async def _append(self, event: bytes) -> None:
        number, self._next = self._next, self._next + 1
        await self.writer.event(number, b"id: %d\n" % number + event + b"\n\n")

    async def ended(self, error: GatewayError | None, reason: str | None) -> None:
        status = "completed" if error is None and reason is None and self.status < 400 else "failed"
        await self.writer.check_held()  # (another edge took it over while this one stalled: it ends it)
        try:
            if not self.writer.ended:
                if error is not None:
                    await self._append(b"data: " + error_json(error.message, error.type, error.code))
                elif reason is not None:
                    message = "the gateway stopped before this stream was complete"
                    await self._append(b"data: " + error_json(message, ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE))
                await self.writer.end(status)
        finally:
            if self.writer.jobs.reason(self.key) != HANDED_OVER:  # (JobTaken: the other edge keeps it)
                self._keep(status)
                await self.store.written(record_id(self.key))


def _after(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return -1
    if not raw.strip().isdigit():
        raise bad_request(f"Invalid 'Last-Event-ID': expected an event's id (a whole number), got {raw!r}.", "Last-Event-ID")
    return int(raw)


@get(openai_paths("chat/completions/{completion_id:str}/stream"))  # (the parameter named as stored_chat's)
async def resume_chat_stream(request: Request, completion_id: str) -> Stream:
    """The events of a resumable chat stream after `Last-Event-ID`, then the live rest."""
    request_id = completion_id  # (the stream's id is its request id: the answer's x-request-id)
    after = _after(request)
    edge: Edge = request.app.state.edge
    principal = await edge.auth.authenticate_fresh(request.headers.get("authorization"), request.headers.get("api-key"))
    record = await edge.responses.find(record_id(request_id), principal.caller)
    if record is None or record.response.get("object") != STREAM_OBJECT:
        raise GatewayError(404, f"No resumable stream with id '{request_id}'.", ErrorType.INVALID_REQUEST, ErrorCode.NOT_FOUND)
    over = record.response.get("status") != "in_progress" or record.deadline is None
    until = 0.0 if over else (record.deadline or 0.0) + ORPHANED_AFTER

    async def events() -> AsyncIterator[bytes]:
        async with aclosing(edge.response_events.read(request_id, after, until)) as entries:
            async for event in entries:
                yield event.data

    return Stream(events(), media_type="text/event-stream; charset=utf-8", headers=STREAM_HEADERS)


ROUTES = [resume_chat_stream]
