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
from nats.js.errors import APIError, NoStreamResponseError

from gateway.asgi_io import next_reply
from gateway.errors import bus_unavailable
from gateway.reply_order import ReplyOrder
from llmgw.blobs import Blobs, reply_blob
from llmgw.bus import AckedPublisher
from llmgw.contracts import (
    MSG_ID_HEADER,
    TRACEPARENT_HEADER,
    Cancel,
    Priority,
    ReplyMessage,
    ResendReplies,
    Subjects,
    UpstreamRequest,
    decode_reply,
    encode_internal,
)
from llmgw.interactive_load import InteractiveTraffic

log = structlog.get_logger()

FIRST_PUBLISH_RETRY = 0.05  # seconds before a publish no stream answered is tried again (doubling)
MAX_PUBLISH_RETRY = 0.5
RESEND_SETTLE = 0.25  # seconds after a reconnect before the workers are asked for the replies again


def leaderless(exc: Exception) -> bool:
    """A publish refused because the stream has no leader right now: "no responders" or
    JetStream's 503 (an election is under way). Worth trying again; anything else is not."""
    return isinstance(exc, NoStreamResponseError) or (isinstance(exc, APIError) and exc.code == 503)


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
        self._order: dict[str, ReplyOrder] = {}  # each pending request's, feeding its queue
        self._idle = asyncio.Event()  # set whenever no request is in flight
        self._idle.set()
        self._sub: Subscription | None = None
        self._resend: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.publisher.start()
        self._sub = await self.nc.subscribe(self.reply_subject, cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        try:
            reply = decode_reply(msg.data)
        except Exception as exc:
            log.error("reply_undecodable", error=str(exc))
            return
        order = self._order.get(reply.request_id)
        if order is None or not order.put(reply):  # (nobody waits for it, or a copy)
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
        self._order[request_id] = ReplyOrder(queue)
        self._idle.clear()
        return queue

    def close(self, request_id: str) -> None:
        queue = self.pending.pop(request_id, None)
        order = self._order.pop(request_id, None)
        if order is not None:
            order.close()
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
        client was told to retry (503) would still be run, billed and metered, for nobody.

        A stream that has no leader for a moment (a cluster node lost, its replicas electing
        another) answers "no responders" at once: the publish is tried again, with the same
        message id (JetStream stores it once), until `publish_timeout` is up."""
        headers = {MSG_ID_HEADER: request.request_id}
        if traceparent is not None:
            headers[TRACEPARENT_HEADER] = traceparent
        subject, payload = self.subjects.request(provider, priority), encode_internal(request)
        deadline = time.monotonic() + self.publish_timeout
        pause = FIRST_PUBLISH_RETRY
        while True:
            try:
                if not self.nc.is_connected:
                    raise ConnectionError("not connected to NATS")
                await self.publisher.publish(subject, payload, headers=headers, timeout=max(deadline - time.monotonic(), 0.01))
                if priority == Priority.INTERACTIVE and self.traffic is not None:
                    self.traffic.arrived()
                return
            except Exception as exc:
                if not leaderless(exc) or time.monotonic() + pause >= deadline:
                    log.warning("request_publish_failed", request_id=request.request_id, error=str(exc) or type(exc).__name__)
                    raise bus_unavailable() from None
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PUBLISH_RETRY)

    def reconnected(self) -> None:
        """Back on the bus after a reconnect: a reply sent while this edge's subscription was
        gone (its node died) is lost, so the workers are asked for their latest ones again,
        once the subscription has had a moment to reach every node. (Nothing to ask while no
        request waits.)"""
        if self.pending and (self._resend is None or self._resend.done()):
            self._resend = asyncio.create_task(self._ask_resend(), name="replies-resend")

    async def _ask_resend(self) -> None:
        await asyncio.sleep(RESEND_SETTLE)
        try:
            await self.nc.publish(self.subjects.resend_replies, encode_internal(ResendReplies(self.reply_subject)))
        except Exception as exc:
            log.warning("replies_resend_ask_failed", error=str(exc) or type(exc).__name__)
            return
        log.info("replies_resend_asked", waiting=len(self.pending))

    async def cancel(self, request_id: str) -> None:
        """The client went away: tell the worker serving it to stop."""
        try:
            await self.nc.publish(self.subjects.cancel, encode_internal(Cancel(request_id)))
        except Exception as exc:
            log.warning("cancel_publish_failed", request_id=request_id, error=str(exc) or type(exc).__name__)

    async def stop(self) -> None:
        if self._resend is not None:
            self._resend.cancel()
        await self.publisher.stop()
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
