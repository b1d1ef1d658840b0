"""A request's replies handed to its handler in the order its worker sent them, each once.

Replies are core NATS messages. After a NATS node dies, a worker sends its latest replies again
(`workers/recent_replies.py`): a stream's chunks may then come twice, or one lost with the node
after those that followed it. The chunks of an attempt carry their place (`Chunks.seq`, from 0):
one already handed over is dropped; one ahead of a gap waits for the gap to fill, and so does an
attempt's failure or whole answer that comes while chunks are missing. A gap still open after
`GAP_WAIT` seconds is given up on (what is ahead of it is handed over): a chunk lost for good
(an edge too slow for its subscription's limits) costs the client that part of the answer, not
the whole answer at its deadline. Messages of another
attempt (a redelivery to another worker) go through as they come: the pipeline ends such a
stream with an error.
"""

from __future__ import annotations

import asyncio

from llmgw.contracts import Chunks, ReplyMessage

GAP_WAIT = 3.0  # seconds a missing chunk is waited for (a worker resends within about one)


class ReplyOrder:
    def __init__(self, queue: asyncio.Queue[ReplyMessage]) -> None:
        self.queue = queue
        self._attempt: int | None = None  # the attempt whose chunks are being ordered
        self._next = 0  # the seq handed over next
        self._ahead: dict[int, Chunks] = {}  # chunks past a gap
        self._last: ReplyMessage | None = None  # the attempt's end, come while chunks are missing
        self._done = False  # the attempt's end was handed over: any later copy is dropped
        self._gap_timer: asyncio.TimerHandle | None = None

    def put(self, reply: ReplyMessage) -> bool:
        """Hand the reply over (now, or once what comes before it is in); False: it is a copy
        of one handed over already, of an older attempt, or comes after the end: dropped."""
        if self._attempt is not None and reply.attempt < self._attempt:
            return False
        if self._attempt is None or reply.attempt > self._attempt:
            self._restart(reply.attempt)
        if self._done:
            return False
        if not isinstance(reply, Chunks):
            if self._ahead:
                self._last = reply  # (chunks before it are still to come)
            else:
                self._hand(reply)
            return True
        if reply.seq < self._next or reply.seq in self._ahead:
            return False
        self._ahead[reply.seq] = reply
        while not self._done and self._next in self._ahead:
            self._next += 1
            self._hand(self._ahead.pop(self._next - 1))
        self._release_last()
        if self._ahead and self._gap_timer is None:
            self._gap_timer = asyncio.get_running_loop().call_later(GAP_WAIT, self._skip_gap)
        return True

    def _release_last(self) -> None:
        if not self._ahead and self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None
        if not self._done and not self._ahead and self._last is not None:
            self._hand(self._last)

    def _skip_gap(self) -> None:
        """The missing chunks are not coming: hand over what came after them, in order."""
        self._gap_timer = None
        for seq in sorted(self._ahead):
            if self._done:
                break
            self._next = seq + 1
            self._hand(self._ahead[seq])
        self._ahead = {}
        self._release_last()

    def close(self) -> None:
        if self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None

    def _restart(self, attempt: int) -> None:
        self.close()
        self._attempt, self._next, self._ahead, self._last, self._done = attempt, 0, {}, None, False

    def _hand(self, reply: ReplyMessage) -> None:
        self.queue.put_nowait(reply)
        if not isinstance(reply, Chunks) or reply.done:
            self._done = True
