"""Letting what a process just sent reach the process that waits for it, now.

On a machine where the edge, the workers and nats-server share a few cores, a message's receiver
is woken on the sender's core (the loopback network path runs in the sender's context) and waits
there until the sender stops running. A sender that goes on computing after a latency-critical
send (a worker reading the rest of a fast stream, an edge writing its log line) delays that send
by as long as it computes: measured up to the whole stream's parsing time for the first chunk
(about 1 ms at 32 chunks). Two hops matter, and two helpers hand them over:

- `let_writes_out()` after a NATS publish: nats-py only queues a publish (its flusher task hands
  the bytes to the transport once the publishing task suspends) and uvloop sends queued writes at
  the end of a loop iteration, so two loop turns get the bytes onto the socket; then the core is
  offered to whoever the send woke (`sched_yield`, a few microseconds when nobody waits).
- `offer_core()` after the last send of an HTTP answer: Granian's I/O thread writes it, once it
  gets a core.
"""

from __future__ import annotations

import asyncio
import os

_sched_yield = getattr(os, "sched_yield", lambda: None)  # (POSIX; elsewhere nothing to offer)


async def let_writes_out() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    _sched_yield()


def offer_core() -> None:
    _sched_yield()
