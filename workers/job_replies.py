"""Replies to a background job's request (`UpstreamRequest.reply_stream`): kept in JetStream.

An edge running a background job (a background response, a resumable chat stream) may die while
the worker still answers: its replies are then published to the job's subject of the job replies
stream instead of core NATS, each one acked by the stream before the next is sent (so they are
kept in order), so that the edge taking the job over reads them all again from the first. Each
publish carries a de-duplication id (`Nats-Msg-Id`) of the request, the delivery and the
message's place, so a publish tried again after a lost ack is kept once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from llmgw.bus import AckedPublisher
from llmgw.contracts import MSG_ID_HEADER, UpstreamRequest

log = structlog.get_logger()

PUBLISH_TIMEOUT = 5.0  # seconds to wait for the stream's ack of one reply
TRIES = 4  # publishes of one reply before the request fails (a stream leader election, ...)

Publish = Callable[[bytes], Awaitable[None]]


class JobReplies:
    def __init__(self, publisher: AckedPublisher, timeout: float = PUBLISH_TIMEOUT) -> None:
        self.publisher = publisher
        self.timeout = timeout

    def sender(self, request: UpstreamRequest, attempt: int, part: str = "") -> Publish | None:
        """How the replies of this delivery of `request` are sent when it is a background job's
        (None: to its `reply_to`, on core NATS). `part` tells apart the senders of one delivery."""
        subject = request.reply_stream
        if subject is None:
            return None
        prefix = f"{request.request_id}.{attempt}{part}."
        counter = iter(range(1 << 62))

        async def publish(payload: bytes) -> None:
            headers = {MSG_ID_HEADER: prefix + str(next(counter))}
            for tried in range(1, TRIES + 1):
                try:
                    await self.publisher.publish(subject, payload, headers, self.timeout)
                    return
                except Exception as exc:
                    if tried == TRIES:
                        raise
                    log.warning("job_reply_publish_retry", request_id=request.request_id, error=str(exc) or type(exc).__name__)
                    await asyncio.sleep(0.25 * tried)

        return publish
