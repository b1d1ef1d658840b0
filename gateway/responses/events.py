"""The events of background streams (`background: true, stream: true`), kept in JetStream so a
client that lost its connection reads them again: `GET /v1/responses/{id}?stream=true&starting_after=N`.

Each response's events are one subject of the response events stream (`Subjects.response_events`),
appended in order as the edge relays them (`ResponseEvent`: the event's `sequence_number` and the
server-sent event as sent), closed by a `ResponseStreamEnd`. A reader reads the subject from its
start with an ordered consumer, skips the events up to N and relays the rest as they come (the
ones stored, then the live ones, through the same consumer: no gap, no duplicate) until the end.
The stream's max age is the longest a response may run (`LLMGW_REQUEST_TIMEOUT`) plus how long
the events stay readable after it ended (`LLMGW_RESPONSE_EVENTS_RETENTION`).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

import structlog
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, Header, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, NotFoundError

from gateway.asgi_io import Receive, Send, cancel_on_disconnect
from llmgw.contracts import ResponseEvent, ResponseStreamEnd, ResponseStreamEntry, Subjects, decode_stream_entry, encode_internal

log = structlog.get_logger()

WRONG_LAST_SEQUENCE = 10071  # JetStream's error code: the subject's last entry is not the one expected
IDLE_WAIT = 1.0  # seconds between looks at whether a reader should go on waiting
PIECE_MARGIN = 64 * 1024  # room in a bus message for the entry's framing and headers
_EVENT_END = re.compile(rb"\r?\n\r?\n")


class EventSplitter:
    """A server-sent event stream fed in arbitrary chunks, given back an event at a time (each
    without the blank line that ended it)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes, more: bool) -> list[bytes]:
        """The events complete so far (`more` false: the stream ended, what is left is one too)."""
        *events, self._pending = _EVENT_END.split(self._pending + data)
        if not more and self._pending.strip():
            events.append(self._pending)
            self._pending = b""
        return [event for event in events if event.strip()]


class WrittenElsewhere(Exception):
    """A response's subject has an entry its writer did not know of: another edge writes its events."""


class Kept:
    """What of a background job's events is kept already when an edge takes the job over and
    writes them again (gateway/job_takeover.py): those numbered up to `through`, `partial` bytes
    of the next one (an event kept in pieces, cut short), or all of them and the end (`ended`);
    `last` is the stream sequence of the subject's last entry (0: it has none)."""

    __slots__ = ("ended", "last", "partial", "through")

    def __init__(self, through: int = -1, partial: int = 0, ended: bool = False, last: int = 0) -> None:
        self.through = through
        self.partial = partial
        self.ended = ended
        self.last = last

    def rest(self, number: int, data: bytes) -> bytes | None:
        """What of event `number` (`data`, whole) is still to be kept; None: nothing."""
        if self.ended or number <= self.through:
            return None
        if number == self.through + 1 and self.partial:
            data, self.partial = data[self.partial :], 0
            return data or None
        return data


class ResponseEvents:
    def __init__(self, subjects: Subjects, retention: float, request_timeout: float) -> None:
        self.subjects = subjects
        self.max_age = retention + request_timeout
        self.js: JetStreamContext | None = None
        self.max_piece = 1 << 20

    async def start(self, js: JetStreamContext, max_payload: int) -> None:
        self.js = js
        self.max_piece = max(max_payload - PIECE_MARGIN, 1024)
        config = StreamConfig(
            name=self.subjects.response_events_stream,
            subjects=[self.subjects.response_events_wildcard],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=self.max_age,
        )
        try:
            info = await js.stream_info(self.subjects.response_events_stream)
        except NotFoundError:
            try:
                await js.add_stream(config)
            except BadRequestError:  # another edge made it first
                pass
            return
        if float(info.config.max_age or 0) != float(self.max_age):
            await js.update_stream(config)

    def _js(self) -> JetStreamContext:
        if self.js is None:
            raise RuntimeError("the response events stream is not started")
        return self.js

    async def append(self, response_id: str, entry: ResponseStreamEntry, after: int) -> int:
        """Store one entry (awaited: the entries of a response are stored in order) if the subject's
        last entry is still the one at stream sequence `after` (0: none); the entry's own sequence.
        WrittenElsewhere when another writer stored one since. An event larger than a bus message
        is stored as several entries of its number, each a piece of its bytes: a reader relays
        them one after the other, so the client reads the event whole."""
        subject = self.subjects.response_events(response_id)
        if isinstance(entry, ResponseEvent) and len(entry.data) > self.max_piece:
            data = entry.data
            for start in range(0, len(data), self.max_piece):
                piece = ResponseEvent(entry.sequence_number, data[start : start + self.max_piece])
                after = await self._publish(subject, encode_internal(piece), after)
            return after
        return await self._publish(subject, encode_internal(entry), after)

    async def _publish(self, subject: str, payload: bytes, after: int) -> int:
        try:
            ack = await self._js().publish(subject, payload, headers={Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(after)})
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise WrittenElsewhere(subject) from None
            raise
        return int(ack.seq)

    async def kept(self, response_id: str) -> Kept:
        """What of a response's events is kept (its last entry; when that is a whole piece of an
        event kept in pieces, the pieces of that event, counted)."""
        subject = self.subjects.response_events(response_id)
        try:
            msg = await self._js().get_last_msg(self.subjects.response_events_stream, subject)
        except NotFoundError:
            return Kept()
        entry = decode_stream_entry(msg.data or b"")
        last = int(msg.seq or 0)
        if isinstance(entry, ResponseStreamEnd):
            return Kept(ended=True, last=last)
        if len(entry.data) < self.max_piece:  # (an event's last piece, or an event whole)
            return Kept(entry.sequence_number, last=last)
        kept = 0
        async with aclosing(self._entries(subject)) as entries:
            async for each in entries:
                if isinstance(each, ResponseEvent) and each.sequence_number == entry.sequence_number:
                    kept += len(each.data)
        return Kept(entry.sequence_number - 1, kept, last=last)

    async def _entries(self, subject: str) -> AsyncGenerator[ResponseStreamEntry, None]:
        """The entries kept on `subject` now, from its first."""
        sub = await self._js().subscribe(
            subject, stream=self.subjects.response_events_stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=5.0)
                yield decode_stream_entry(msg.data)
                if msg.metadata.num_pending == 0:
                    return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def read(self, response_id: str, after: int, until: float) -> AsyncGenerator[ResponseEvent, None]:
        """The response's events numbered above `after`, stored ones then live ones, until its end
        (or, when no end comes, `until`: the time past which the job that wrote them is gone)."""
        sub = await self._js().subscribe(
            self.subjects.response_events(response_id),
            stream=self.subjects.response_events_stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=IDLE_WAIT)
                except TimeoutError:  # (nats-py's is one too)
                    if time.time() > until:
                        return
                    continue
                try:
                    entry = decode_stream_entry(msg.data)
                except Exception as exc:
                    log.error("response_event_undecodable", response_id=response_id, error=str(exc))
                    continue
                if isinstance(entry, ResponseStreamEnd):
                    return
                if entry.sequence_number > after:
                    yield entry
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # (the connection went away)
                pass


async def relay_events(events: ResponseEvents, key: str, until: float, send: Send, receive: Receive) -> None:
    """Send a job's kept events from its first, then the live rest, as an SSE body already begun;
    the client going away stops only its reading (the job goes on)."""

    async def relay() -> bool:
        async with aclosing(events.read(key, -1, until)) as read:
            async for event in read:
                await send({"type": "http.response.body", "body": event.data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

    await cancel_on_disconnect(relay(), receive)
