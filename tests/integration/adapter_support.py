"""What the provider adapter tests share: an UpstreamRequest as the edge would send it, and a
stream read into its OpenAI chunks and usage items."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import msgspec

from llmgw.contracts import Caller, NativeCall, Operation, UpstreamRequest
from workers.usage import Usage


def upstream_request(
    body: dict | bytes,
    model_group: str,
    deployment_id: str,
    *,
    stream: bool = False,
    include_usage: bool = False,
    system_prompts=(),
    operation: str = Operation.CHAT,
    native: NativeCall | None = None,
    timeout: float = 30,
) -> UpstreamRequest:
    """A request for `deployment_id` (a native call when `native` is given)."""
    now = time.time()
    return UpstreamRequest(
        request_id="r-1",
        reply_to="_INBOX.x",
        operation=Operation.NATIVE if native else operation,
        model_group=model_group,
        deployment_id=deployment_id,
        body=body if isinstance(body, bytes) else msgspec.json.encode(body),
        stream=stream,
        include_usage=include_usage,
        deadline=now + timeout,
        received_at=now,
        caller=Caller(key_hash="k"),
        system_prompts=list(system_prompts),
        native=native,
    )


async def collect(items: AsyncIterator[bytes | Usage]) -> tuple[list[dict], list[Usage]]:
    """A chat stream's chunks (decoded) and usage items, in order."""
    chunks, usages = [], []
    async for item in items:
        if isinstance(item, Usage):
            usages.append(item)
        else:
            chunks.append(msgspec.json.decode(item))
    return chunks, usages
