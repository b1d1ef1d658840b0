"""How fast this edge's batches send their lines: batch work yields to interactive traffic.

A batch line costs the edge, NATS and a worker about what an interactive request costs them, on
the same cores: a batch at full speed makes interactive requests wait for CPU. So while any edge
has had an interactive request within the last second (llmgw/interactive_load.py), the lines of
every batch this edge runs go at a trickle: at most `yield_lines` in flight on the edge (all its
batches together), and after each line ends a pause of `yield_pause` seconds per interactive
request of the last second (more interactive work, a longer pause; at most `MAX_PAUSE`). With no
interactive traffic each batch runs at its full `batch_concurrency`. A line already sent always
finishes; the pace only holds back the start of the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from llmgw.interactive_load import InteractiveTraffic

MAX_PAUSE = 1.0  # seconds a line waits at most after the one before ended
LOOK_EVERY = 0.25  # seconds between looks at the traffic while a line waits for its turn


class BatchPace:
    def __init__(self, traffic: Callable[[], InteractiveTraffic | None], yield_lines: int, yield_pause: float) -> None:
        self._traffic = traffic  # (the edge's, once it is on the bus)
        self.yield_lines = yield_lines
        self.yield_pause = yield_pause
        self.in_flight = 0  # lines of this edge's batches sent and not yet ended
        self._next_start = 0.0  # monotonic time before which no line starts while yielding
        self._freed = asyncio.Event()

    def yielding(self) -> bool:
        traffic = self._traffic()
        return traffic is not None and traffic.present()

    async def turn(self, stopped: Callable[[], bool]) -> bool:
        """Wait until a line may be sent, and count it in flight (`ended` when it is over); False
        (nothing counted) when `stopped()` became true meanwhile."""
        while not stopped():
            if not self.yielding():
                self.in_flight += 1
                return True
            wait = self._next_start - time.monotonic()
            if self.in_flight < self.yield_lines and wait <= 0:
                self.in_flight += 1
                return True
            self._freed.clear()
            timeout = min(wait, LOOK_EVERY) if wait > 0 else LOOK_EVERY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), timeout)
        return False

    def ended(self) -> None:
        """A line counted by `turn` is over: the next may start after the pause."""
        self.in_flight -= 1
        traffic = self._traffic()
        rate = traffic.rate() if traffic is not None else 0
        self._next_start = time.monotonic() + min(self.yield_pause * rate, MAX_PAUSE)
        self._freed.set()
