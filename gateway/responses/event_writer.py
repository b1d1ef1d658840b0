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

import structlog

from gateway.background import BackgroundJobs, JobTaken
from gateway.responses.events import Kept, ResponseEvents, WrittenElsewhere
from llmgw.contracts import ResponseEvent, ResponseStreamEnd, ResponseStreamEntry

log = structlog.get_logger()

MAX_REREADS = 8  # a writer holding the lease meets another's entry about once (the stalled edge's last)

Holds = Callable[[], Awaitable[bool]]  # whether this edge still holds the job's lease


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
                if not await self.holds():
                    log.warning("background_job_written_elsewhere", job_id=self.key)
                    self.jobs.taken(self.key)  # (its relay ends without cancelling the worker)
                    raise JobTaken(self.key) from None
                self.kept = await self.events.kept(self.key)  # (then what of the entry is still to be kept)
                continue
            if isinstance(entry, ResponseStreamEnd):
                self.kept.ended = True
            return
        raise RuntimeError(f"the events of {self.key} kept changing under their writer")
