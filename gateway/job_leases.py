"""Which edge runs each background job: its lease in the jobs bucket (`Subjects.jobs_bucket`).

An edge writes a job's record (contracts.jobs.BackgroundJob: itself as owner, until when, and
what another edge needs to carry the job on) before the job's request is published, renews it
every third of `LLMGW_JOB_LEASE_SECONDS` (a compare-and-set on its revision) while the job runs
and deletes it when the job ended. Every edge looks at the bucket every `LLMGW_JOB_POLL_SECONDS`
(gateway/job_takeover.py): a record whose lease lapsed (its edge was killed, or lost NATS) is taken
by a compare-and-set, so exactly one edge carries the job on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from gateway.dispatcher import bus_unavailable
from llmgw.blobs import Blobs
from llmgw.contracts import BackgroundJob, Caller, Subjects, decode_job, encode_job
from llmgw.kv import open_bucket

if TYPE_CHECKING:
    from gateway.routes import Background

log = structlog.get_logger()

RECORD_MARGIN = 4096  # room in a KV message for the record's other fields


def new_job(owner: str, background: Background, request_id: str, client_request_id: str | None, caller: Caller) -> BackgroundJob:
    """A background job's record, held by `owner` (completed by `JobLeases.begin`)."""
    return BackgroundJob(
        owner=owner,
        expires_at=0.0,
        kind=background.kind,
        request_id=request_id,
        client_request_id=client_request_id or "",
        key_hash=caller.key_hash,
        deployment_id="",
        received_at=0.0,
        deadline=0.0,
        created_at=background.created_at,
    )


class JobLeases:
    def __init__(self, subjects: Subjects, lease_seconds: float) -> None:
        self.subjects = subjects
        self.lease_seconds = lease_seconds
        self._kv: KeyValue | None = None
        self._blobs: Blobs | None = None
        self._max_body = 0

    async def start(self, js: JetStreamContext, blobs: Blobs, max_payload: int) -> None:
        self._kv = await open_bucket(js, self.subjects.jobs_bucket)
        self._blobs = blobs
        self._max_body = max(max_payload - RECORD_MARGIN, 0)

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("the job leases are not started")
        return self._kv

    async def begin(
        self, job: BackgroundJob, body: bytes, deployment_id: str, received_at: float, deadline: float
    ) -> tuple[BackgroundJob, int]:
        """Record a job about to be published (the client's `body`), held by `job.owner`: the
        record and its revision (503 when the bus cannot take it)."""
        try:
            job = msgspec.structs.replace(job, deployment_id=deployment_id, received_at=received_at, deadline=deadline, body=body)
            if len(body) > self._max_body and self._blobs is not None:
                name = f"job-{job.request_id}"
                await self._blobs.put(name, body)
                job = msgspec.structs.replace(job, body=b"", body_blob=name)
            job = msgspec.structs.replace(job, expires_at=time.time() + self.lease_seconds)
            return job, await self.kv.create(job.request_id, encode_job(job))
        except Exception as exc:
            log.warning("job_lease_create_failed", request_id=job.request_id, error=str(exc) or type(exc).__name__)
            raise bus_unavailable() from None

    async def body(self, job: BackgroundJob) -> bytes | None:
        """The client's body of the job (None: its blob is gone)."""
        if job.body_blob is None:
            return job.body
        return await self._blobs.get(job.body_blob) if self._blobs is not None else None

    async def _holder(self, request_id: str) -> tuple[str | None, int | None]:
        """Who holds the job's lease now, and its record's revision ((None, None): it ended)."""
        try:
            entry = await self.kv.get(request_id)
        except (KeyNotFoundError, KeyDeletedError, NotFoundError):
            return None, None
        if not entry.value:
            return None, None
        return decode_job(entry.value).owner, entry.revision

    async def end(self, job: BackgroundJob, owner: str) -> bool:
        """The job ended on `owner`: nobody carries it on. False when another edge holds its lease
        (it took the job over from `owner`, stalled past it), which ends it in turn."""
        holder, revision = await self._holder(job.request_id)
        if holder is not None:
            if holder != owner:
                return False
            try:
                await self.kv.delete(job.request_id, last=revision)
            except KeyWrongLastSequenceError:  # (taken over this moment)
                return False
            except (KeyNotFoundError, KeyDeletedError, NotFoundError):
                pass
        if job.body_blob is not None and self._blobs is not None:
            await self._blobs.delete(job.body_blob)
        return True

    async def free(self, job: BackgroundJob, owner: str) -> None:
        """Give the job's lease up (a stopping edge handing it over): lapsed at once, unless
        another edge holds it already."""
        holder, revision = await self._holder(job.request_id)
        if holder != owner:
            return
        freed = msgspec.structs.replace(job, owner=owner, expires_at=0.0)
        with contextlib.suppress(KeyWrongLastSequenceError, KeyNotFoundError, KeyDeletedError, NotFoundError):
            await self.kv.update(job.request_id, encode_job(freed), last=revision)

    async def holds(self, request_id: str, owner: str) -> bool:
        """Whether `owner` holds the job's lease now (False once it ended or another edge took it)."""
        holder, _ = await self._holder(request_id)
        return holder == owner

    async def drop(self, request_id: str) -> None:
        """Nobody is to carry the job on (it was cancelled while no edge ran it)."""
        try:
            await self.kv.delete(request_id)
        except Exception as exc:  # (an edge taking it over finds the worker's cancelled answer)
            log.warning("job_lease_drop_failed", request_id=request_id, error=str(exc) or type(exc).__name__)

    async def lapsed(self, skip: set[str]) -> AsyncIterator[tuple[BackgroundJob, int]]:
        """The jobs whose lease lapsed (but those in `skip`), with their records' revisions."""
        try:
            keys = list(await self.kv.keys())
        except NoKeysError:
            return
        now = time.time()
        for key in keys:
            if key in skip:
                continue
            try:
                entry = await self.kv.get(key)
            except (KeyNotFoundError, KeyDeletedError, NotFoundError):
                continue
            if not entry.value or entry.revision is None:
                continue
            try:
                job = decode_job(entry.value)
            except msgspec.DecodeError:
                log.error("job_record_undecodable", request_id=key)
                continue
            if job.expires_at <= now:
                yield job, entry.revision

    async def take(self, job: BackgroundJob, owner: str, revision: int | None) -> int | None:
        """Take (`revision`: the lapsed record's) or renew (ours) the job's lease; the new revision,
        or None when another edge took it first (or it ended)."""
        taken = msgspec.structs.replace(job, owner=owner, expires_at=time.time() + self.lease_seconds)
        try:
            return await self.kv.update(job.request_id, encode_job(taken), last=revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError, KeyDeletedError, NotFoundError):
            return None

    async def hold(self, job: BackgroundJob, owner: str, revision: int) -> None:
        """Renew the job's lease every third of its length, until cancelled (the job ended)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                renewed = await self.take(job, owner, revision)
            except Exception as exc:
                log.warning("job_lease_renewal_failed", request_id=job.request_id, error=str(exc) or type(exc).__name__)
                continue
            if renewed is None:
                log.warning("job_lease_lost", request_id=job.request_id)
                return
            revision = renewed
