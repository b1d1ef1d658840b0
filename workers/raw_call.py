"""An answer relayed as the upstream sent it (status, headers, bytes) and metered from its own
usage fields: native passthrough, and the routes whose answers are the provider's own."""

from __future__ import annotations

import asyncio
import time

from llmgw.config import Deployment
from llmgw.contracts import Completed, ErrorCode, ErrorType, UpstreamRequest, UsageStatus
from workers.providers.answers import NativeHead, StreamProgress
from workers.providers.base import Provider, StallGuard
from workers.providers.errors import UpstreamError
from workers.providers.request_body import RequestBody
from workers.relay import ChunkRelay
from workers.reply_sender import ReplySender
from workers.usage import Usage
from workers.usage_events import Outcome


async def call_raw(
    send: ReplySender,
    request: UpstreamRequest,
    body: RequestBody,
    attempt: int,
    deployment: Deployment,
    provider: Provider,
    method: str,
    outcome: Outcome,
    started: float,
    relay: ChunkRelay | None,
    stall: float,
) -> None:
    """An answer relayed as the upstream sent it (status, headers, bytes), metered from its own
    usage fields: native passthrough, and the routes whose answers are the provider's own."""
    assert relay is not None
    head: NativeHead | None = None
    parts: list[bytes] = []
    progress: StreamProgress | None = None
    try:
        async with StallGuard(stall, deployment) as guard:
            async for item in getattr(provider, method)(deployment, request, outcome.upstream_model, body):
                guard.touch()
                if isinstance(item, NativeHead):
                    head = item
                    if head.status >= 400:
                        outcome.status, outcome.http_status = UsageStatus.UPSTREAM_ERROR, head.status
                    if head.stream:
                        await relay.start_raw(head.status, head.headers)
                elif type(item) is bytes:
                    if head is not None and head.stream:
                        if outcome.ttft is None:
                            outcome.ttft = time.time() - started
                            if head.status < 400:
                                outcome.saw(item)
                        await relay.add(item)
                    else:
                        parts.append(item)
                elif isinstance(item, Usage):
                    outcome.took(item)
                elif isinstance(item, StreamProgress):
                    progress = item
    except asyncio.CancelledError:
        if progress is not None and outcome.usage is None:  # stopped mid-stream: what it used so far
            outcome.took(progress.estimate())
        raise
    if head is None:
        raise UpstreamError(502, "the upstream sent no answer", ErrorType.API, ErrorCode.UPSTREAM_ERROR)
    cost = outcome.cost(deployment)
    if head.stream:
        await relay.finish(cost, deployment.id, outcome.tries, outcome.tokens())
        return
    if head.status < 400:
        outcome.saw(parts[0] if len(parts) == 1 else b"".join(parts))
    reply = Completed(
        request_id=request.request_id,
        attempt=attempt,
        body=b"".join(parts),
        status=head.status,
        headers=head.headers,
        cost=cost,
        deployment_id=deployment.id,
        tries=outcome.tries,
        tokens=outcome.tokens(),
    )
    await send.whole(request, reply)
