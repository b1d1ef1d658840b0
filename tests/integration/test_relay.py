"""A stream's first chunks leave the worker at once, even while it goes on reading (real nats-server).

An upstream that sends faster than the worker reads never suspends the task reading it; before
`let_writes_out` the first chunks sat in nats-py's send buffer until the whole stream was read.
Here the event loop is blocked right after the first chunk is added (as a long burst of parsing
would block it) and a subscriber on another thread, with its own connection, must have the chunk
while the loop is still blocked.
"""

from __future__ import annotations

import asyncio
import threading

import nats
import pytest

from llmgw.blobs import Blobs, open_blobs
from llmgw.contracts import Chunks, Subjects, decode_reply
from workers.relay import IMMEDIATE_MESSAGES, ChunkRelay

pytestmark = pytest.mark.integration


class ThreadSubscriber:
    """Subscribes on its own thread and event loop: it receives while the test's loop is blocked."""

    def __init__(self, url: str, subject: str) -> None:
        self.url, self.subject = url, subject
        self.ready = threading.Event()
        self.received: list[Chunks] = []
        self.arrived = threading.Condition()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        nc = await nats.connect(self.url)

        async def on_msg(msg) -> None:
            with self.arrived:
                self.received.append(decode_reply(msg.data))
                self.arrived.notify_all()

        await nc.subscribe(self.subject, cb=on_msg)
        await nc.flush()
        self.ready.set()
        await self._stop.wait()
        await nc.close()

    def start(self) -> ThreadSubscriber:
        self._thread.start()
        assert self.ready.wait(10), "subscriber did not start"
        return self

    def wait_for(self, count: int, timeout: float) -> bool:
        """Blocks the calling thread (and so its event loop) until `count` messages arrived."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.received) >= count, timeout)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


async def test_first_chunks_leave_while_the_worker_is_still_busy(nats_server, nats_client, bus_prefix) -> None:
    publisher = nats_client
    subject = f"{bus_prefix}.reply.edge"
    subscriber = ThreadSubscriber(nats_server.url, subject).start()
    try:
        blobs = Blobs(await open_blobs(nats_client.jetstream(), Subjects(bus_prefix).blobs_bucket), nats_client.max_payload)
        relay = ChunkRelay(publisher, subject, "req-relay", 1, interval=10.0, max_batch=1000, blobs=blobs)
        await relay.add(b'{"choices":[{"delta":{"role":"assistant"}}]}')
        # No await from here on: this loop is blocked, as it is while a burst of chunks is parsed.
        assert subscriber.wait_for(1, timeout=3), "the first chunk did not leave while the loop was busy"
        await relay.add(b'{"choices":[{"delta":{"content":"Hi"}}]}')
        assert subscriber.wait_for(IMMEDIATE_MESSAGES, timeout=3), "the second chunk did not leave at once either"
        assert [m.data for m in subscriber.received] == [
            [b'{"choices":[{"delta":{"role":"assistant"}}]}'],
            [b'{"choices":[{"delta":{"content":"Hi"}}]}'],
        ]
        assert [m.seq for m in subscriber.received] == [0, 1]

        # Past the immediate ones, chunks are coalesced: the next one waits for the interval,
        # the batch size, or the end of the stream.
        await relay.add(b'{"choices":[{"delta":{"content":" there"}}]}')
        assert not subscriber.wait_for(IMMEDIATE_MESSAGES + 1, timeout=0.2)
        await relay.finish(cost=0.0, deployment_id="d1")
        await publisher.flush()
        assert subscriber.wait_for(IMMEDIATE_MESSAGES + 1, timeout=3)
        last = subscriber.received[-1]
        assert last.done and last.data == [b'{"choices":[{"delta":{"content":" there"}}]}']
    finally:
        subscriber.stop()
