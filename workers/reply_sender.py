"""How a request's whole answer or its failure reaches the edge that asked: on core NATS through
`RecentReplies` (kept a few seconds, sent again after an edge's reconnect), or, for a background
job, into its JetStream reply subject (workers/job_replies.py); an answer too large for a bus
message goes by the blobs store. A failure after a stream began ends that stream instead."""

from __future__ import annotations

from llmgw.blobs import Blobs
from llmgw.contracts import Completed, Failed, UpstreamRequest, encode_internal
from workers.job_replies import JobReplies
from workers.providers.errors import UpstreamError
from workers.recent_replies import RecentReplies
from workers.relay import ChunkRelay
from workers.usage_events import Outcome


class ReplySender:
    def __init__(self, blobs: Blobs, replies: RecentReplies, job_replies: JobReplies) -> None:
        self.blobs = blobs
        self.replies = replies
        self.job_replies = job_replies

    async def whole(self, request: UpstreamRequest, reply: Completed) -> None:
        """A whole answer to the edge; one too large for a bus message goes by the blobs store."""
        payload = encode_internal(await self.blobs.pack_completed(reply))
        send = self.job_replies.sender(request, reply.attempt, ".whole")
        if send is None:
            await self.replies.publish(request.reply_to, payload)
        else:
            await send(payload)

    async def failure(
        self,
        request: UpstreamRequest,
        attempt: int,
        exc: UpstreamError,
        relay: ChunkRelay | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        failure = Failed(
            request_id=request.request_id,
            attempt=attempt,
            cost=0.0 if relay is None or not relay.started else None,  # a broken stream: metering decides
            deployment_id=outcome.deployment.id if outcome is not None and outcome.deployment is not None else None,
            tries=outcome.tries if outcome is not None else 1,
            status=exc.status,
            message=exc.message,
            type=exc.type,
            code=exc.code,
            param=exc.param,
            retry_after=exc.retry_after,
        )
        if relay is not None and relay.started:
            await relay.fail(failure)
            return
        send = self.job_replies.sender(request, attempt, ".failed")
        if send is None:
            await self.replies.publish(request.reply_to, encode_internal(failure))
        else:
            await send(encode_internal(failure))
