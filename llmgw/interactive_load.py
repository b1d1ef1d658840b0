"""How much interactive traffic the gateway has now, for the batch work that yields to it.

Every edge counts the interactive requests it publishes (`arrived`) and, while it has had some in
the last second, broadcasts that count every `TICK` seconds on core NATS (once more when it falls
to none); every edge and worker listening (`start`) adds up what the others said. The batch runner
(gateway/batches/pace.py) and the workers' batch pullers (workers/puller.py) read `present()` and
`rate()` before they take batch work: a line of a batch costs the same CPU as an interactive
request, on the same cores, so while interactive traffic is present batch work runs at a trickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from llmgw.contracts import InteractiveLoad, Subjects, decode_interactive_load, encode_internal

log = structlog.get_logger()

TICK = 0.25  # seconds between an edge's counts; the last second is four of them
BUCKETS = 4
QUIET_AFTER = 1.0  # seconds without an interactive request after which traffic is over
FORGET_AFTER = 60.0  # seconds after which an edge not heard from is forgotten


class InteractiveTraffic:
    def __init__(self, subjects: Subjects, source: str, quiet_after: float = QUIET_AFTER) -> None:
        self.subjects = subjects
        self.source = source
        self.quiet_after = quiet_after
        self.last_arrival = -1e9  # monotonic time of this process's last interactive request
        self._count = 0  # interactive requests since the last tick
        self._buckets = [0] * BUCKETS  # counts of the last ticks: the last second
        self._slot = 0
        self._others: dict[str, tuple[float, int]] = {}  # source -> (monotonic time heard, arrived)
        self._nc: Client | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    def arrived(self) -> None:
        """An interactive request was published by this process."""
        self._count += 1
        self.last_arrival = time.monotonic()

    def present(self) -> bool:
        """Whether any edge had an interactive request within the last `quiet_after` seconds."""
        now = time.monotonic()
        if now - self.last_arrival < self.quiet_after:
            return True
        return any(arrived > 0 and now - heard < self.quiet_after for heard, arrived in self._others.values())

    def rate(self) -> int:
        """Interactive requests of the last second, on every edge heard from."""
        now = time.monotonic()
        heard = sum(arrived for at, arrived in self._others.values() if now - at < self.quiet_after)
        return sum(self._buckets) + self._count + heard

    async def start(self, nc: Client, publish: bool) -> None:
        """Listen to the other edges; `publish`: tell them this process's count too (an edge)."""
        self._nc = nc
        self._sub = await nc.subscribe(self.subjects.interactive_load, cb=self._heard)
        if publish:
            self._task = asyncio.create_task(self._ticks(), name="interactive-load")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _heard(self, msg: Msg) -> None:
        try:
            load = decode_interactive_load(msg.data)
        except Exception:
            return
        if load.source == self.source:
            return
        now = time.monotonic()
        if load.source not in self._others:  # (a new edge: forget those not heard for a while)
            for source, (heard, _) in list(self._others.items()):
                if now - heard > FORGET_AFTER:
                    del self._others[source]
        self._others[load.source] = (now, load.arrived)

    async def _ticks(self) -> None:
        said = 0  # the count last broadcast
        while True:
            await asyncio.sleep(TICK)
            self._slot = (self._slot + 1) % BUCKETS
            self._buckets[self._slot] = self._count
            self._count = 0
            arrived = sum(self._buckets)
            if (arrived or said) and self._nc is not None and self._nc.is_connected:
                try:
                    await self._nc.publish(self.subjects.interactive_load, encode_internal(InteractiveLoad(self.source, arrived)))
                except Exception as exc:
                    log.debug("interactive_load_publish_failed", error=str(exc) or type(exc).__name__)
                said = arrived
