"""One background job's writer of its kept events (gateway.responses.events), fenced.

Two edges can write one job's events for a moment: an edge that stalled (its process stopped, its
link to NATS cut) past its lease while another edge took the job over (gateway/job_takeover.py),
and that goes on where it was until its next renewal tells it. So every entry is stored only if
the subject's last entry is still the one this writer knows of (JetStream's expected last subject
sequence). A writer that finds another's entry reads what is kept again: when the job's lease is
still its own it goes on after the kept events, writing only those not kept yet (both edges
number the events alike, from the same worker replies), and when it is not, it stops at once
(`JobTaken`) and leaves the job to the edge that holds it. Every event is kept once, in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from gateway.background import BackgroundJobs, JobTaken
from gateway.responses.events import Kept, ResponseEvents, WrittenElsewhere
from llmgw.contracts import ResponseEvent, ResponseStreamEnd, ResponseStreamEntry

if TYPE_CHECKING:
    from gateway.edge import Edge

log = structlog.get_logger()

MAX_REREADS = 8  # a writer holding the lease meets another's entry about once (the stalled edge's last)

Holds = Callable[[], Awaitable[bool]]  # whether this edge still holds the job's lease


async def lease_held(edge: Edge, request_id: str) -> bool:
    """Whether this edge holds the lease of the job of request `request_id` (True when the bus
    cannot tell: the events it writes are fenced all the same)."""
    try:
        return await edge.job_leases.holds(request_id, edge.dispatcher.edge_id)
    except Exception:
        return True


class EventWriter:
    """Appends a job's events (numbered from 0) and its end to its subject, each at most once."""

    def __init__(self, events: ResponseEvents, jobs: BackgroundJobs, key: str, holds: Holds) -> None:
        self.events = events
        self.jobs = jobs
        self.key = key  # the job's (BackgroundJobs) and its events' subject's
        self.holds = holds
        self.kept = Kept()  # what is kept of the job's events (an edge took it over: read at once)

    def resumed(self, kept: Kept) -> None:
        """The job is taken over: `kept` is what its first edge wrote of it."""
        self.kept = kept

    @property
    def ended(self) -> bool:
        """The job's end is kept already (an edge wrote it before this one took the job)."""
        return self.kept.ended

    async def event(self, number: int, data: bytes) -> None:
        """Keep event `number` (`data`, whole) unless it is kept already."""
        await self._write(lambda: self._rest(number, data))

    async def end(self, status: str) -> None:
        """Keep the job's end unless it is kept already."""
        await self._write(lambda: None if self.kept.ended else ResponseStreamEnd(status))

    async def check_held(self) -> None:
        """JobTaken, the job marked handed over (its relay then ends without cancelling the
        worker), once another edge holds the job's lease."""
        if not await self.holds():
            log.warning("background_job_written_elsewhere", job_id=self.key)
            self.jobs.taken(self.key)
            raise JobTaken(self.key)

    def _rest(self, number: int, data: bytes) -> ResponseEvent | None:
        rest = self.kept.rest(number, data)
        return None if rest is None else ResponseEvent(number, rest)

    async def _write(self, entry_of: Callable[[], ResponseStreamEntry | None]) -> None:
        for _ in range(MAX_REREADS):
            entry = entry_of()
            if entry is None:
                return
            try:
                self.kept.last = await self.events.append(self.key, entry, self.kept.last)
            except WrittenElsewhere:
                await self.check_held()
                self.kept = await self.events.kept(self.key)  # (then what of the entry is still to be kept)
                continue
            if isinstance(entry, ResponseStreamEnd):
                self.kept.ended = True
            return
        raise RuntimeError(f"the events of {self.key} kept changing under their writer")
