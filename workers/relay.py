"""Sending a stream's chunks back to the edge: the first ones at once, the rest coalesced.

Every NATS message costs about 10 us of CPU on each side (see the design measurements), so after
the first chunks (which go out immediately, for time-to-first-token) chunks are sent in batches:
when `max_batch` are waiting or `interval` has passed since the last send. A message whose chunks
would not fit in one bus message (a huge tool call's arguments, a Responses `response.completed`
event carrying the whole output) sends them by the blobs store (`Blobs.pack_chunks`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from llmgw.blobs import Blobs
from llmgw.contracts import Chunks, Failed, encode_internal
from llmgw.handoff import let_writes_out

# Messages sent without waiting. Two, because OpenAI-style streams open with a chunk that only
# carries the role: the first token is in the second chunk, often right behind it (with one,
# that token waited for the coalescing interval: time to first content chunk +10 ms at 10 ms
# between upstream chunks).
IMMEDIATE_MESSAGES = 2


class Publishes(Protocol):
    """Where the messages go: a NATS connection, or the worker's `RecentReplies` (which keeps
    them a few seconds, to be sent again after a reconnect)."""

    async def publish(self, subject: str, payload: bytes) -> None: ...


class ChunkRelay:
    def __init__(
        self,
        nc: Publishes,
        subject: str,
        request_id: str,
        attempt: int,
        interval: float,
        max_batch: int,
        blobs: Blobs,
        publish: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> None:
        """`publish`: how a message is sent when not on core NATS to `subject` (a background
        job's replies, kept in JetStream: workers/job_replies.py)."""
        self.nc = nc
        self._publish = publish
        self.blobs = blobs
        self.subject = subject
        self.request_id = request_id
        self.attempt = attempt
        self.interval = interval
        self.max_batch = max_batch
        self.buffer: list[bytes] = []
        self.seq = 0
        self.sent = 0  # chunks sent so far
        self.last_send = 0.0
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_task: asyncio.Task | None = None
        self.raw = False  # a native stream: the provider's bytes, not chunk JSON
        self.deployment_id: str | None = None  # who serves it: told to the edge with the first message
        self._head: tuple[int, list[tuple[str, str]]] | None = None

    @property
    def started(self) -> bool:
        return self.sent > 0 or bool(self.buffer) or self.seq > 0

    async def start_raw(self, status: int, headers: list[tuple[str, str]]) -> None:
        """A native stream: its status and headers go first, at once (the client's answer starts)."""
        self.raw = True
        self._head = (status, headers)
        await self.flush(force=True)

    async def add(self, chunk: bytes) -> None:
        self.buffer.append(chunk)
        now = time.monotonic()
        if self.seq < IMMEDIATE_MESSAGES or len(self.buffer) >= self.max_batch or now - self.last_send >= self.interval:
            await self.flush()
        elif self._timer is None:
            delay = max(self.interval - (now - self.last_send), 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_task = asyncio.create_task(self.flush())

    async def flush(
        self,
        done: bool = False,
        cost: float | None = None,
        force: bool = False,
        deployment_id: str | None = None,
        tries: int = 1,
        tokens: int | None = None,
    ) -> None:
        async with self._lock:
            if not self.buffer and not done and not force:
                return
            data, self.buffer = self.buffer, []
            msg = Chunks(
                request_id=self.request_id,
                attempt=self.attempt,
                seq=self.seq,
                data=data,
                done=done,
                cost=cost,
                raw=self.raw,
                deployment_id=deployment_id or (self.deployment_id if self.seq == 0 else None),
                tries=tries,
                tokens=tokens,
            )
            if self._head is not None:
                msg = msgspec.structs.replace(msg, status=self._head[0], headers=self._head[1])
                self._head = None
            self.seq += 1
            self.sent += len(data)
            self.last_send = time.monotonic()
            payload = encode_internal(await self.blobs.pack_chunks(msg))
            if self._publish is None:
                await self.nc.publish(self.subject, payload)
            else:
                await self._publish(payload)
        if self.seq <= IMMEDIATE_MESSAGES:
            await let_writes_out()  # the first chunks leave before the rest of the stream is read

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def finish(
        self, cost: float | None = None, deployment_id: str | None = None, tries: int = 1, tokens: int | None = None
    ) -> None:
        self._cancel_timer()
        await self.flush(done=True, cost=cost, deployment_id=deployment_id, tries=tries, tokens=tokens)

    async def fail(self, failure: Failed) -> None:
        """Send what is buffered, then the error (the edge ends the stream with it)."""
        self._cancel_timer()
        await self.flush()
        if self._publish is None:
            await self.nc.publish(self.subject, encode_internal(failure))
        else:
            await self._publish(encode_internal(failure))
