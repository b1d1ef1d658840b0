"""The replies a worker sent lately (answers, stream chunks, failures), sent again after a reconnect.

A reply is a core NATS message: one written into the connection to a node that has just died
(the client learns of it a moment later) is lost, and its request, already acked and metered,
would reach its edge's deadline (504). So every final reply a worker publishes is kept for a few
seconds, and those published from shortly before a disconnect on are published again once the
connection is back (and the edges' subscriptions have had a moment to reach the node it reconnected
to). An edge whose own node died asks for its replies again once it is back (`ResendReplies`):
those kept for its reply subject are published again. An edge takes the first copy; one for a request it no longer waits for is dropped (and a
blob it names already read and deleted, or expiring with the store's TTL).

A stream's chunks are kept too: the edge puts them in order by `Chunks.seq` and drops a copy of
one it already has (`gateway/reply_order.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import structlog
from nats.aio.client import Client

log = structlog.get_logger()

KEEP = 5.0  # seconds a reply is kept
BEFORE_DISCONNECT = 1.0  # replies published this long before the disconnect are suspect
SETTLE = 0.25  # seconds after a reconnect before the replay: the edges' interest reaches the node


class RecentReplies:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._kept: deque[tuple[float, str, bytes]] = deque()
        self._disconnected_at: float | None = None
        self._replay: asyncio.Task[None] | None = None

    async def publish(self, subject: str, payload: bytes) -> None:
        now = time.monotonic()
        await self.nc.publish(subject, payload)
        self._kept.append((now, subject, payload))
        while self._kept and self._kept[0][0] < now - KEEP:
            self._kept.popleft()

    def disconnected(self) -> None:
        if self._disconnected_at is None:
            self._disconnected_at = time.monotonic()

    def reconnected(self) -> None:
        """Publish the suspect replies again, shortly (in a task of its own)."""
        since = (self._disconnected_at or time.monotonic()) - BEFORE_DISCONNECT
        self._disconnected_at = None
        if self._replay is None or self._replay.done():
            self._replay = asyncio.create_task(self._send_again(since), name="replies-replay")

    async def _send_again(self, since: float) -> None:
        await asyncio.sleep(SETTLE)
        suspect = [(subject, payload) for at, subject, payload in list(self._kept) if at >= since]
        try:
            for subject, payload in suspect:
                await self.nc.publish(subject, payload)
        except Exception as exc:
            log.warning("replies_replay_failed", error=str(exc) or type(exc).__name__)
            return
        if suspect:
            log.info("replies_replayed", replies=len(suspect))

    async def resend_to(self, subject: str) -> None:
        """An edge reconnected: its replies kept here, published again."""
        kept = [payload for _, to, payload in list(self._kept) if to == subject]
        try:
            for payload in kept:
                await self.nc.publish(subject, payload)
        except Exception as exc:
            log.warning("replies_resend_failed", error=str(exc) or type(exc).__name__)
            return
        if kept:
            log.info("replies_resent", replies=len(kept), to=subject)

    def stop(self) -> None:
        if self._replay is not None:
            self._replay.cancel()
