"""Usage events of requests that finish close together, published as one JetStream message.

Each event costs the bus a store and an ack whether it travels alone or with others, so a worker
groups them: the events handed in during one turn of the event loop leave together at the end of
it, and while `IN_FLIGHT` batches wait for their acks the events that come meanwhile gather into
the next one (up to `MAX_EVENTS`). Nothing waits on a timer: a worker with little to do sends each
event at once, a busy one sends fewer, larger messages. The client's answer has already left when
its event is handed in; what waits is the request's ack, which `add` returns for only once the
batch is stored.

A batch is published again with the same `Nats-Msg-Id` until JetStream stores it (its
de-duplication drops a copy whose ack was lost); metering counts each event once by its
`request_id`, so a batch stored twice after that window, or an event of a request redelivered to
another worker, still lands once.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator

import structlog

from llmgw.bus import AckedPublisher
from llmgw.contracts import MSG_ID_HEADER, UsageBatch, UsageEvent, encode_json

log = structlog.get_logger()

MAX_EVENTS = 64  # events in one message (~1 KB each: well under NATS's 1 MB default payload)
IN_FLIGHT = 2  # batches awaiting their ack at once; the events that come meanwhile gather
PUBLISH_TIMEOUT = 5.0  # seconds to wait for JetStream to store a batch (then retry)
FIRST_RETRY = 0.1  # seconds before the first retry of a failed publish, doubling up to MAX_RETRY
MAX_RETRY = 2.0


class _Waiting:
    __slots__ = ("event", "stored", "traceparent")

    def __init__(self, event: UsageEvent, traceparent: str | None, stored: asyncio.Future[None]) -> None:
        self.event = event
        self.traceparent = traceparent
        self.stored = stored


class UsageBatcher:
    """Hands each event to a batch and returns once JetStream has stored that batch."""

    def __init__(
        self,
        publisher: AckedPublisher,
        subject: str,
        *,
        max_payload: int | None = None,
        max_events: int = MAX_EVENTS,
        in_flight: int = IN_FLIGHT,
        publish_timeout: float = PUBLISH_TIMEOUT,
    ) -> None:
        self._publisher = publisher
        self._subject = subject
        self._max_payload = max_payload  # None: the server's limit
        self._max_events = max_events
        self._publish_timeout = publish_timeout
        self._slots = asyncio.Semaphore(in_flight)
        self._pending: list[_Waiting] = []
        self._sender: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        # Unique across processes and restarts: a batch id repeats only in its own retries.
        self._ids = (f"usage-{uuid.uuid4().hex}-{n}" for n in itertools.count())

    async def add(self, event: UsageEvent, traceparent: str | None = None) -> None:
        """Return when the batch holding `event` is stored (retrying until it is)."""
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Waiting(event, traceparent, stored))
        if self._sender is None:
            # It runs at the next turn of the loop: the events handed in during this one join.
            self._sender = asyncio.create_task(self._send())
        await stored

    async def _send(self) -> None:
        try:
            while self._pending:
                await self._slots.acquire()
                taken = self._pending[: self._max_events]
                del self._pending[: len(taken)]
                task = asyncio.create_task(self._publish(taken))
                self._publishing.add(task)
                task.add_done_callback(self._publishing.discard)
        finally:
            self._sender = None

    async def _publish(self, taken: list[_Waiting]) -> None:
        try:
            for payload, events in self._payloads(taken):
                await self._publish_until_stored(payload, events)
        except BaseException:
            # Stopped (the worker is going away) before the batch was stored: its requests are
            # not acked, so they are delivered again.
            for waiting in taken:
                waiting.stored.cancel()
            raise
        else:
            for waiting in taken:
                if not waiting.stored.done():  # (its request's task may have been cancelled)
                    waiting.stored.set_result(None)
        finally:
            self._slots.release()

    def _payloads(self, taken: list[_Waiting]) -> Iterator[tuple[bytes, int]]:
        """(payload, events) of the batch; halved until each part fits in one NATS message."""
        traced = any(w.traceparent is not None for w in taken)
        batch = UsageBatch(events=[w.event for w in taken], traceparents=[w.traceparent for w in taken] if traced else [])
        payload = encode_json(batch)
        limit = self._max_payload if self._max_payload is not None else self._publisher.nc.max_payload
        if len(payload) <= limit or len(taken) == 1:
            yield payload, len(taken)
            return
        half = len(taken) // 2
        yield from self._payloads(taken[:half])
        yield from self._payloads(taken[half:])

    async def _publish_until_stored(self, payload: bytes, events: int) -> None:
        headers = {MSG_ID_HEADER: next(self._ids)}
        delay = FIRST_RETRY
        while True:
            try:
                await self._publisher.publish(self._subject, payload, headers, self._publish_timeout)
                return
            except Exception as exc:
                log.warning(
                    "usage_publish_retry",
                    msg_id=headers[MSG_ID_HEADER],
                    events=events,
                    error=str(exc) or type(exc).__name__,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY)
