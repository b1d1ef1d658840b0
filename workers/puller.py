"""A continuous pull from a JetStream consumer, with flow control.

nats-py's `fetch(batch=N)` holds messages that already arrived until the batch is full or its
timeout passes, which adds up to the whole timeout to a request's latency. Here pull requests are
sent to the consumer's `MSG.NEXT` API with our own inbox, each message is handed on the moment it
arrives, and new pull requests are sent whenever free capacity (slots not in use and not already
asked for) reaches a quarter of the worker's capacity. The server answers pulls in order, so a
delivered message is counted against the oldest pull still open.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from llmgw.interactive_load import InteractiveTraffic

log = structlog.get_logger()

PULL_EXPIRES = 15.0  # seconds a pull request stays open on the server (its expiry wakes the loop)
NO_WAIT_EXPIRES = 1.0  # a no-wait pull (batch queue) is over at once, or after this at the latest
BATCH_POLL = 0.5  # seconds between looks at the batch queue just after it was found empty (at least)
BATCH_IDLE_POLL = 4.0  # ... doubling up to this while it stays empty (a look costs two API calls)
# A pull is counted open this long past its expiry, so that the server's 408 for it comes first:
# counted over at its expiry on our clock, it would be asked again at once, and the 408 arriving
# then would close the new pull's count instead of its own.
PULL_GRACE = 1.0


class _Pull:
    __slots__ = ("expires_at", "remaining")

    def __init__(self, remaining: int, expires_at: float) -> None:
        self.remaining = remaining
        self.expires_at = expires_at


class ContinuousPuller:
    def __init__(
        self,
        nc: Client,
        stream: str,
        consumer: str,
        capacity: int,
        in_use: Callable[[], int],
        on_message: Callable[[Msg], None],
    ) -> None:
        self.nc = nc
        self.api_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.capacity = capacity
        self.in_use = in_use
        self.on_message = on_message
        self.pulls: collections.deque[_Pull] = collections.deque()
        self.inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.inbox, cb=self._on_inbox)
        self._task = asyncio.create_task(self._loop(), name=f"puller:{self.api_subject}")

    def capacity_freed(self) -> None:
        """Call when a message is done: more may be asked for."""
        self._wake.set()

    def reset(self) -> None:
        """After a reconnect the server has forgotten our open pulls: ask again."""
        self.pulls.clear()
        self._wake.set()

    def outstanding(self) -> int:
        now = time.monotonic()
        while self.pulls and (self.pulls[0].expires_at <= now or self.pulls[0].remaining <= 0):
            self.pulls.popleft()
        return sum(p.remaining for p in self.pulls)

    async def _on_inbox(self, msg: Msg) -> None:
        if msg.headers and msg.headers.get("Status") and not msg.data:
            # 404 no messages / 408 pull expired / 409 limits: the open pulls are re-evaluated.
            status = msg.headers.get("Status")
            if status not in ("404", "408", "100"):
                log.debug("pull_status", status=status, description=msg.headers.get("Description"))
            if status == "404" and self.pulls:  # a no-wait pull found nothing: it is over
                self.pulls[0].remaining = 0
                self._wake.set()
            if status in ("408", "409"):
                pending = msg.headers.get("Nats-Pending-Messages")
                if self.pulls and pending is not None and pending.isdigit():
                    self.pulls[0].remaining = 0  # that pull is over with `pending` undelivered
                self._wake.set()
            return
        if self._stopping:
            await msg.nak()  # not started: another worker takes it now, not after ack_wait
            return
        for pull in self.pulls:
            if pull.remaining > 0:
                pull.remaining -= 1
                break
        self.on_message(msg)

    async def _loop(self) -> None:
        threshold = max(1, self.capacity // 4)
        while not self._stopping:
            free = self.capacity - self.in_use() - self.outstanding()
            if free >= threshold or (free > 0 and not self.pulls):
                await self._pull(free)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=PULL_EXPIRES)
            except TimeoutError:
                pass

    async def _pull(self, batch: int, no_wait: bool = False, expires: float | None = None) -> None:
        if not self.nc.is_connected:
            return
        if expires is None:
            expires = NO_WAIT_EXPIRES if no_wait else PULL_EXPIRES
        expires_at = time.monotonic() + expires + PULL_GRACE
        ask: dict = {"batch": batch, "expires": int(expires * 1e9)}
        if no_wait:
            ask["no_wait"] = True
        request = msgspec.json.encode(ask)
        try:
            await self.nc.publish(self.api_subject, request, reply=self.inbox)
        except Exception as exc:
            log.warning("pull_request_failed", error=str(exc) or type(exc).__name__)
            return
        self.pulls.append(_Pull(batch, expires_at))

    async def stop(self) -> None:
        """Stop asking for more; a message that still arrives is given back (nak) at once."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None


class BatchPuller(ContinuousPuller):
    """Pulls batch-priority requests only with capacity the interactive queue does not need.

    Before each pull it asks JetStream whether interactive requests are waiting (the interactive
    consumer's pending count); only when none are does it take batch work, with a no-wait pull
    for the free slots, so a batch request never sits in a long pull while interactive ones queue.
    While any edge has interactive traffic (`traffic`, llmgw/interactive_load.py) it takes batch
    work only up to `yield_lines` batch requests in flight on this worker (`batch_in_use`): a batch
    request costs the same CPU as an interactive one, and that CPU is the interactive traffic's.
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        consumer: str,
        capacity: int,
        in_use: Callable[[], int],
        on_message: Callable[[Msg], None],
        *,
        interactive_waiting: Callable[[], Awaitable[bool]],
        traffic: InteractiveTraffic | None = None,
        batch_in_use: Callable[[], int] = lambda: 0,
        yield_lines: int = 1,
    ) -> None:
        super().__init__(nc, stream, consumer, capacity, in_use, on_message)
        self.interactive_waiting = interactive_waiting
        self.traffic = traffic
        self.batch_in_use = batch_in_use
        self.yield_lines = yield_lines
        self._quiet_until = 0.0  # the batch queue was empty: look again at this time
        self._quiet_for = 0.0  # seconds until the next look; doubles while the queue stays empty
        self._found = False  # the open pull brought batch work

    async def _on_inbox(self, msg: Msg) -> None:
        # 404: the no-wait pull found the queue empty; 408: it expired (the server lets a no-wait
        # pull that names an expiry linger until then) without finding more.
        if msg.headers and msg.headers.get("Status") in ("404", "408") and not msg.data:
            if self._found:  # the pull that ended brought work: more may be queued, look again now
                self._found = False
                self._quiet_for = 0.0
                self._quiet_until = 0.0
            else:
                self._quiet_for = min(max(2 * self._quiet_for, BATCH_POLL), BATCH_IDLE_POLL)
                self._quiet_until = time.monotonic() + self._quiet_for
        elif not (msg.headers and msg.headers.get("Status")):
            self._found = True
            self._quiet_for = 0.0  # batch work: the next look after an empty one comes soon again
        await super()._on_inbox(msg)

    def yielding(self) -> bool:
        return self.traffic is not None and self.traffic.present()

    def free(self) -> int:
        """Batch requests that may be asked for now."""
        free = self.capacity - self.in_use() - self.outstanding()
        if self.yielding():
            free = min(free, self.yield_lines - self.batch_in_use() - self.outstanding())
        return free

    async def _loop(self) -> None:
        while not self._stopping:
            free = self.free()
            # Freed capacity wakes this loop after every request; with no batch work waiting it
            # must not cost a JetStream API call each time.
            if free > 0 and self.nc.is_connected and time.monotonic() >= self._quiet_until:
                try:
                    busy = await self.interactive_waiting()
                except Exception as exc:
                    log.debug("interactive_queue_unknown", error=str(exc) or type(exc).__name__)
                    busy = True
                if not busy and self._found and self.yielding():
                    # A batch at a trickle: its next line comes after the edge's pause, so the
                    # pull waits for it (one request at most, briefly) instead of finding the
                    # queue empty and looking again only after BATCH_POLL.
                    await self._pull(free, expires=BATCH_POLL)
                elif not busy:
                    await self._pull(free, no_wait=True)
                else:
                    self._quiet_until = time.monotonic() + BATCH_POLL / 5
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(self._quiet_until - time.monotonic(), BATCH_POLL))
            except TimeoutError:
                pass
