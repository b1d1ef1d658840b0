"""Background jobs whose edge died, carried on by another edge.

Every edge looks at the jobs bucket every `LLMGW_JOB_POLL_SECONDS` (gateway/job_leases.py): a job
whose lease lapsed is taken by a compare-and-set, then carried on here as its first edge would
have: its route reads the client's body again (`Route.parse`, `resolve`, `target`, `prepare`
with the deployment it was sent to), its key is the caller's, and the pipeline runs the job from
the first of the worker's replies kept in JetStream (gateway/job_replies.py), the route's job told
which events are kept already (`Background.resumed`: their numbers, from the response events
stream), so its client reads every event once, with no gap, to the end. The request's budget
reservation was the dead edge's: it is left to metering, which settles it from the usage event
its worker publishes (the lease here holds nothing: `Lease` with no slot and no reservation).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import structlog

from gateway import metrics
from gateway.admission import Lease
from gateway.asgi_io import RequestLog, Scope
from gateway.auth import Principal
from gateway.exchange import Exchange
from gateway.routes import Background, Call, Incoming, Route, Target
from llmgw.contracts import BackgroundJob, JobKind

if TYPE_CHECKING:
    from gateway.edge import Edge
    from gateway.pipeline import Pipeline

log = structlog.get_logger()

READ_GRACE = 10.0  # seconds a job taken over past its deadline is given to read its kept replies
_PATHS = {JobKind.RESPONSE: "/v1/responses", JobKind.CHAT: "/v1/chat/completions"}


async def carry_on(
    pipeline: Pipeline,
    ex: Exchange,
    route: Route,
    principal: Principal,
    call: Call,
    target: Target,
    deadline: float,
    background: Background,
    job: BackgroundJob,
    revision: int,
) -> None:
    """A background job, from the first of its replies kept in JetStream (gateway/job_replies.py)
    to its end, its lease renewed meanwhile, then ended: on the edge that took its request, or on
    one that took it over."""
    edge = pipeline.edge
    ex.job_key = background.key
    renewing = asyncio.create_task(edge.job_leases.hold(job, edge.dispatcher.edge_id, revision))

    def lost(task: asyncio.Task[None]) -> None:  # (the lease was taken by another edge)
        if not task.cancelled() and task.exception() is None:
            edge.jobs.hand_over(background.key)

    renewing.add_done_callback(lost)
    owner = edge.dispatcher.edge_id
    try:
        async with edge.job_replies.follow(ex.request_id) as queue:
            over = await pipeline.run_background(ex, route, principal, call, target, queue, deadline, background)
    except Exception as exc:  # (its replies could not be followed: its lease lapses, another edge tries)
        log.warning("background_job_not_followed", request_id=ex.request_id, error=str(exc) or type(exc).__name__)
        edge.job_replies.forget(ex.request_id)
        await pipeline.end(ex, route)
        return
    finally:
        renewing.cancel()
    try:
        if not over:  # handed over (this edge stopping, or another took it): the next edge looking takes it
            edge.job_replies.forget(ex.request_id)
            await edge.job_leases.free(job, owner)  # (unless one holds it already)
            return
        if await edge.job_leases.end(job, owner):
            await edge.job_replies.purge(ex.request_id)
        else:
            edge.job_replies.forget(ex.request_id)
    except Exception as exc:  # (its lease lapses: the edge taking it over finds it over)
        log.warning("job_lease_end_failed", request_id=ex.request_id, error=str(exc) or type(exc).__name__)


class JobTakeover:
    def __init__(self, edge: Edge, pipeline: Pipeline, routes: dict[str, Route]) -> None:
        self.edge = edge
        self.pipeline = pipeline
        self.routes = routes  # the route that carries on each kind of job (JobKind)
        self.poll = edge.settings.job_poll_seconds
        self.held: set[str] = set()  # request ids of the jobs this edge took over and still runs
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="job-takeover")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        leases = self.edge.job_leases
        owner = self.edge.dispatcher.edge_id
        while True:
            await asyncio.sleep(self.poll)
            try:
                async for job, revision in leases.lapsed(self.held):
                    if job.owner == owner:
                        continue  # (ours, its renewal late: it runs here still)
                    taken = await leases.take(job, owner, revision)
                    if taken is not None:
                        log.info("background_job_taken_over", request_id=job.request_id, from_edge=job.owner)
                        await self._carry_on(job, taken)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job_takeover_look_failed", error=str(exc) or type(exc).__name__)

    async def _carry_on(self, job: BackgroundJob, revision: int) -> None:
        """Rebuild the job's request as its first edge had it, then run it from its first reply."""
        edge, pipeline = self.edge, self.pipeline
        route = self.routes.get(job.kind)
        body = await edge.job_leases.body(job)
        if route is None or body is None:
            log.error("background_job_not_resumable", request_id=job.request_id, kind=job.kind)
            await edge.job_leases.end(job, edge.dispatcher.edge_id)
            return
        scope: Scope = {"type": "http", "method": "POST", "path": _PATHS.get(job.kind, ""), "headers": [], "query_string": b""}
        ex = Exchange(scope)
        ex.request_id, ex.client_request_id, ex.started = job.request_id, job.client_request_id or None, job.received_at
        ex.log = RequestLog(ex.request_id, ex.started, scope, ex.client_request_id)
        try:
            principal = ex.principal = await edge.auth.by_token_fresh(job.key_hash)
            call = ex.call = route.parse(scope, Incoming(None, None, len(body)), body, edge)
            call.sent_to = job.deployment_id
            await route.resolve(edge, principal, call)
            target = route.target(edge, principal, call)
            deployment = edge.deployment(job.deployment_id) or target.candidates[0]
            route.prepare(edge, call, deployment)
            background = route.background(edge, principal, call, job.request_id)
            if background is None:
                raise ValueError("the request is no background job")
            background.resumed(job.request_id, job.deadline, job.created_at, await edge.response_events.kept(background.key))
        except Exception as exc:  # (its key was deleted, its model removed, ...: it reads failed past its deadline)
            log.error("background_job_not_resumable", request_id=job.request_id, error=str(exc) or type(exc).__name__)
            await edge.job_leases.end(job, edge.dispatcher.edge_id)
            return
        ex.model_group, ex.provider = target.model_group, deployment.provider
        ex.log.model, ex.log.stream = call.model, call.stream
        ex.lease = Lease(edge.ratelimits, edge.budgets, job.request_id, deployment, [], {}, [], None)
        ex.published = ex.detached = True
        if pipeline.counted:
            metrics.IN_FLIGHT.inc()
        held = job.request_id
        self.held.add(held)
        # Taken over past its deadline, its worker's replies are all kept: they are read still.
        reading_until = max(job.deadline, time.time() + READ_GRACE)
        task = edge.jobs.run(
            background.key, carry_on(pipeline, ex, route, principal, call, target, reading_until, background, job, revision)
        )
        task.add_done_callback(lambda _: self.held.discard(held))
