"""Putting requests on the bus and routing the workers' replies back to the waiting request.

Each edge process subscribes once to its own reply subject; replies are matched to requests by
request id and queued for the handler that waits on them; a reply too large for one bus message
names the blob that holds it, read (then deleted) when its handler takes it (`next_reply`), and
deleted at once when nobody waits for it. The requests waiting on replies are the edge's requests
in flight: a stopping edge waits for them (`settled`) before it leaves the bus.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from gateway.asgi_io import next_reply
from gateway.errors import GatewayError
from llmgw.blobs import Blobs, reply_blob
from llmgw.bus import AckedPublisher
from llmgw.contracts import (
    MSG_ID_HEADER,
    TRACEPARENT_HEADER,
    Cancel,
    ErrorCode,
    ErrorType,
    Priority,
    ReplyMessage,
    Subjects,
    UpstreamRequest,
    decode_reply,
    encode_internal,
)
from llmgw.interactive_load import InteractiveTraffic

log = structlog.get_logger()


def bus_unavailable() -> GatewayError:
    """What a client is told when the bus cannot take or give its request: retry in a second."""
    return GatewayError(
        503,
        "the gateway's message bus is unavailable; retry shortly",
        ErrorType.UNAVAILABLE,
        ErrorCode.UNAVAILABLE,
        headers={"retry-after": "1"},
    )


class Dispatcher:
    def __init__(
        self, nc: Client, subjects: Subjects, publish_timeout: float, blobs: Blobs, traffic: InteractiveTraffic | None = None
    ) -> None:
        self.nc = nc
        self.traffic = traffic  # counts the interactive requests published, for batch work to yield to
        self.blobs = blobs
        self._discarding: set[asyncio.Task[None]] = set()  # deletions of blobs no request will read
        self.publisher = AckedPublisher(nc)  # JetStream, cheaper than `js.publish`
        self.subjects = subjects
        self.publish_timeout = publish_timeout
        self.edge_id = uuid.uuid4().hex[:12]
        self.reply_subject = subjects.reply(self.edge_id)
        self.pending: dict[str, asyncio.Queue[ReplyMessage]] = {}
        self._idle = asyncio.Event()  # set whenever no request is in flight
        self._idle.set()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        await self.publisher.start()
        self._sub = await self.nc.subscribe(self.reply_subject, cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        try:
            reply = decode_reply(msg.data)
        except Exception as exc:
            log.error("reply_undecodable", error=str(exc))
            return
        queue = self.pending.get(reply.request_id)
        if queue is not None:
            queue.put_nowait(reply)
        else:
            self._discard(reply)

    def _discard(self, reply: ReplyMessage) -> None:
        """A reply no request waits for any more: the blob it names (if any) goes now, not at its TTL."""
        if reply_blob(reply) is not None:
            task = asyncio.create_task(self._delete_blob(reply))
            self._discarding.add(task)
            task.add_done_callback(self._discarding.discard)

    async def _delete_blob(self, reply: ReplyMessage) -> None:
        try:
            await self.blobs.discard(reply)
        except Exception as exc:  # (it expires with the store's TTL)
            log.warning("reply_blob_delete_failed", request_id=reply.request_id, error=str(exc) or type(exc).__name__)

    async def next_reply(self, queue: asyncio.Queue[ReplyMessage], deadline: float) -> ReplyMessage:
        """The request's next reply by `deadline` (504 otherwise), whole: one that came apart is
        read back from the blobs store, and its blob deleted."""
        reply = await next_reply(queue, deadline)
        if reply_blob(reply) is None:
            return reply
        try:
            async with asyncio.timeout(max(deadline - time.time(), 1.0)):
                return await self.blobs.unpack(reply)
        except Exception as exc:
            log.warning("reply_blob_read_failed", request_id=reply.request_id, error=str(exc) or type(exc).__name__)
            raise bus_unavailable() from None

    def open(self, request_id: str) -> asyncio.Queue[ReplyMessage]:
        queue: asyncio.Queue[ReplyMessage] = asyncio.Queue()
        self.pending[request_id] = queue
        self._idle.clear()
        return queue

    def close(self, request_id: str) -> None:
        queue = self.pending.pop(request_id, None)
        while queue is not None and not queue.empty():  # replies never read: their blobs go too
            self._discard(queue.get_nowait())
        if not self.pending:
            self._idle.set()

    @property
    def in_flight(self) -> int:
        """Requests opened and not yet closed: answers (whole or streamed) still being relayed."""
        return len(self.pending)

    async def settled(self, timeout: float) -> bool:
        """Wait until no request is in flight, at most `timeout` s; whether none is left."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def submit(
        self, provider: str, request: UpstreamRequest, priority: str = Priority.INTERACTIVE, traceparent: str | None = None
    ) -> None:
        """Store the request in JetStream; it then waits there until a worker takes it (batch
        requests only when no interactive one is waiting).

        While the connection to NATS is down the request is refused at once: nats-py would keep
        the publish in its reconnect buffer and send it once the server is back, so a request the
        client was told to retry (503) would still be run, billed and metered, for nobody."""
        try:
            if not self.nc.is_connected:
                raise ConnectionError("not connected to NATS")
            await self.publisher.publish(
                self.subjects.request(provider, priority),
                encode_internal(request),
                headers={MSG_ID_HEADER: request.request_id, TRACEPARENT_HEADER: traceparent}
                if traceparent is not None
                else {MSG_ID_HEADER: request.request_id},
                timeout=self.publish_timeout,
            )
        except Exception as exc:
            log.warning("request_publish_failed", request_id=request.request_id, error=str(exc) or type(exc).__name__)
            raise bus_unavailable() from None
        if priority == Priority.INTERACTIVE and self.traffic is not None:
            self.traffic.arrived()

    async def cancel(self, request_id: str) -> None:
        """The client went away: tell the worker serving it to stop."""
        try:
            await self.nc.publish(self.subjects.cancel, encode_internal(Cancel(request_id)))
        except Exception as exc:
            log.warning("cancel_publish_failed", request_id=request_id, error=str(exc) or type(exc).__name__)

    async def stop(self) -> None:
        await self.publisher.stop()
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
