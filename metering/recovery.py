"""The usage events a previous metering process was given but did not ack (it crashed).

JetStream hands them out again only after the ack wait, after newer events: settling the newer
ones first would move the ledgers' `applied_seq` past events never settled. So at start metering
reads the messages between the consumer's ack floor and its last delivery straight from the
stream, in order, and stores and settles them first. Those of them that were acked, and the
redeliveries that follow, change nothing (the store's request_id check and `applied_seq`).
"""

from __future__ import annotations

import asyncio

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from llmgw.contracts import Subjects, UsageEvent, decode_usage
from metering.rows import usage_problem

log = structlog.get_logger()

READ_CONCURRENCY = 64


async def unacked_events(js: JetStreamContext, subjects: Subjects, batch_size: int) -> list[list[tuple[int, UsageEvent]]]:
    """Batches of (stream seq, event) above the ack floor, up to the last delivered; [] if none."""
    info = await js.consumer_info(subjects.usage_stream, subjects.metering_consumer)
    if not info.num_ack_pending or info.delivered is None:
        return []
    low = info.ack_floor.stream_seq if info.ack_floor else 0
    high = info.delivered.stream_seq
    if high <= low:
        return []
    log.info("usage_unacked_found", pending=info.num_ack_pending, from_seq=low + 1, to_seq=high)
    limit = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(seq: int) -> tuple[int, UsageEvent] | None:
        async with limit:
            try:
                raw = await js.get_msg(subjects.usage_stream, seq=seq)
            except NotFoundError:  # deleted, or aged out of the stream
                return None
        try:
            event = decode_usage(raw.data or b"")
        except msgspec.DecodeError:
            return None  # the consumer terminates it when it comes again
        return None if usage_problem(event) else (seq, event)

    found = [item for item in await asyncio.gather(*(read(s) for s in range(low + 1, high + 1))) if item]
    return [found[i : i + batch_size] for i in range(0, len(found), batch_size)]
