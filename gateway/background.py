"""The edge's requests that outlive their HTTP request (the Responses API's `background: true`).

The pipeline answers such a request as soon as it is on the work queue and hands the rest of its
life (the worker's replies, the relay, the end of its lease) to a task the edge owns, registered
here under the id its client knows it by. A client cancels it through any edge: the cancel is a
core NATS request every edge hears (`Subjects.response_cancel`) and only the edge running the job
answers, once the job is over. A stopping edge gives its jobs the shutdown grace, then hands what
is left over (`HANDED_OVER`): it stops relaying them, its worker going on, and frees their leases,
so that another edge carries them on at once (gateway/job_takeover.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from llmgw.contracts import CancelResponse, Subjects, decode_cancel_response, encode_internal

log = structlog.get_logger()

CANCELLED = "cancelled"  # the client asked (POST /v1/responses/{id}/cancel)
SHUTDOWN = "shutdown"  # the edge stopped before the job ended (and could not hand it over)
HANDED_OVER = "handed_over"  # the edge stopped before the job ended: another edge carries it on


class JobTaken(Exception):
    """Another edge took the job over while this one still ran it (it had stalled past its
    lease): this edge stops it where it is, without ending it (gateway/responses/event_writer.py)."""


class BackgroundJobs:
    def __init__(self, subjects: Subjects) -> None:
        self.subjects = subjects
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.reasons: dict[str, str] = {}  # why a job was cancelled, by its id
        self._nc: Client | None = None
        self._sub: Subscription | None = None

    async def start(self, nc: Client) -> None:
        self._nc = nc
        self._sub = await nc.subscribe(self.subjects.response_cancel, cb=self._on_cancel)

    def run(self, job_id: str, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `job` as the edge's own task, found by `job_id` until it ends."""
        task = asyncio.ensure_future(job)
        self.tasks[job_id] = task

        def done(_: asyncio.Task[None]) -> None:
            if self.tasks.get(job_id) is task:
                del self.tasks[job_id]
            self.reasons.pop(job_id, None)

        task.add_done_callback(done)
        return task

    def reason(self, job_id: str) -> str | None:
        """Why the job was cancelled (CANCELLED, SHUTDOWN), None when it was not."""
        return self.reasons.get(job_id)

    async def cancel_here(self, job_id: str, reason: str = CANCELLED) -> bool:
        """Cancel the job if this edge runs it and wait for its end; whether it ran here."""
        task = self.tasks.get(job_id)
        if task is None:
            return False
        self.reasons.setdefault(job_id, reason)
        task.cancel()
        await asyncio.wait([task])
        return True

    def taken(self, job_id: str) -> None:
        """The job's own task found it taken over (JobTaken): it stops, its worker going on."""
        self.reasons.setdefault(job_id, HANDED_OVER)

    def hand_over(self, job_id: str) -> None:
        """Another edge took the job over (this edge's lease on it lapsed): stop it here, its
        worker going on, without ending it."""
        task = self.tasks.get(job_id)
        if task is not None:
            log.warning("background_job_lost", job_id=job_id)
            self.reasons.setdefault(job_id, HANDED_OVER)
            task.cancel()

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            job_id = decode_cancel_response(msg.data).response_id
        except Exception as exc:
            log.error("cancel_undecodable", error=str(exc))
            return
        if await self.cancel_here(job_id) and msg.reply:
            await msg.respond(b"ok")  # (others stay silent: only the edge that ran it answers)

    async def cancel_anywhere(self, job_id: str, timeout: float) -> bool:
        """Cancel the job on whichever edge runs it; whether one did (and the job is over)."""
        if await self.cancel_here(job_id):
            return True
        if self._nc is None:
            return False
        try:
            await self._nc.request(self.subjects.response_cancel, encode_internal(CancelResponse(job_id)), timeout=timeout)
        except (TimeoutError, NatsTimeout, NoRespondersError):
            return False
        return True

    async def stop(self, grace: float) -> None:
        """Give the jobs `grace` seconds to end (a client may still cancel one), then hand what is
        left over to the other edges and wait until it is."""
        running = list(self.tasks.values())
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            if late:
                log.warning("background_jobs_handed_over_at_shutdown", jobs=len(late))
                await asyncio.gather(*(self.cancel_here(job_id, HANDED_OVER) for job_id in list(self.tasks)))
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # (the connection is gone already)
                pass
            self._sub = None
