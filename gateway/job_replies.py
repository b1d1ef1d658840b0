"""The worker's replies to background jobs, kept in JetStream (`Subjects.job_replies_stream`).

A background job's request names a subject of the job replies stream (`UpstreamRequest.reply_stream`)
and its worker publishes every reply there, acked, in order (workers/job_replies.py). The edge
running the job reads that subject from its first message with an ordered consumer and hands the
replies to the pipeline as if they came on its own reply subject (`follow`): the same code runs a
job from its start and an edge taking over a job whose edge died, who reads them all again (the
translation of chunks into events is stateful) and keeps only the events not kept yet. Blobs the
replies name are read without being deleted while the job runs (another edge may read them
again), then deleted with the job's replies: the subject is purged once the job ended; the stream's max age (the longest a
request may run, and a margin) drops what a job that never ended left.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from llmgw.blobs import Blobs, reply_blob
from llmgw.contracts import ReplyMessage, Subjects, decode_reply

log = structlog.get_logger()

MARGIN = 300.0  # seconds the replies outlive their request's deadline at most


class JobReplies:
    def __init__(self, subjects: Subjects, request_timeout: float) -> None:
        self.subjects = subjects
        self.max_age = request_timeout + MARGIN
        self._js: JetStreamContext | None = None
        self._blobs: Blobs | None = None
        self._blob_names: dict[str, set[str]] = {}  # of the replies read, by request id

    async def start(self, js: JetStreamContext, blobs: Blobs) -> None:
        self._js, self._blobs = js, blobs
        name = self.subjects.job_replies_stream
        config = StreamConfig(
            name=name,
            subjects=[self.subjects.job_replies_wildcard],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=self.max_age,
            duplicate_window=120.0,
        )
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            with suppress(BadRequestError):  # (another edge made it first)
                await js.add_stream(config)
            return
        if float(info.config.max_age or 0) != float(self.max_age):
            await js.update_stream(config)

    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the job replies stream is not started")
        return self._js

    @asynccontextmanager
    async def follow(self, request_id: str) -> AsyncIterator[asyncio.Queue[ReplyMessage]]:
        """The job's replies from its first, as they are kept, in a queue the pipeline reads."""
        queue: asyncio.Queue[ReplyMessage] = asyncio.Queue()
        blobs = self._blobs
        names = self._blob_names.setdefault(request_id, set())

        async def on_msg(msg: Msg) -> None:
            try:
                reply = decode_reply(msg.data)
            except Exception as exc:
                log.error("job_reply_undecodable", request_id=request_id, error=str(exc))
                return
            name = reply_blob(reply)
            if blobs is not None and name is not None:
                names.add(name)
                try:
                    reply = await blobs.unpack(reply, keep=True)
                except Exception as exc:  # (the pipeline's next read of it fails the job as a lost answer)
                    log.warning("job_reply_blob_read_failed", request_id=request_id, error=str(exc) or type(exc).__name__)
            queue.put_nowait(reply)

        sub = await self.js().subscribe(
            self.subjects.job_replies(request_id),
            stream=self.subjects.job_replies_stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=on_msg,
        )
        try:
            yield queue
        finally:
            with suppress(Exception):  # (the connection went away)
                await sub.unsubscribe()

    def forget(self, request_id: str) -> None:
        """The job goes on elsewhere: its blobs are not this edge's to delete."""
        self._blob_names.pop(request_id, None)

    async def purge(self, request_id: str) -> None:
        """The job ended: its replies (and the blobs they named) are no longer needed."""
        names = self._blob_names.pop(request_id, set())
        if self._blobs is not None:
            for name in names:
                await self._blobs.delete(name)
        try:
            await self.js().purge_stream(self.subjects.job_replies_stream, subject=self.subjects.job_replies(request_id))
        except Exception as exc:  # (they expire with the stream's max age)
            log.warning("job_replies_purge_failed", request_id=request_id, error=str(exc) or type(exc).__name__)
