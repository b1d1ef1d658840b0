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

from llmgw.contracts import Subjects
from metering.usage_messages import HeldEvent, message_events

log = structlog.get_logger()

READ_CONCURRENCY = 64


async def unacked_events(js: JetStreamContext, subjects: Subjects, batch_size: int) -> list[list[HeldEvent]]:
    """Batches of the events above the ack floor, up to the last delivered, in stream order; [] if
    none. A message's events stay in one batch (a ledger settles a message in one write)."""
    info = await js.consumer_info(subjects.usage_stream, subjects.metering_consumer)
    if not info.num_ack_pending or info.delivered is None:
        return []
    low = info.ack_floor.stream_seq if info.ack_floor else 0
    high = info.delivered.stream_seq
    if high <= low:
        return []
    log.info("usage_unacked_found", pending=info.num_ack_pending, from_seq=low + 1, to_seq=high)
    limit = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(seq: int) -> list[HeldEvent]:
        async with limit:
            try:
                raw = await js.get_msg(subjects.usage_stream, seq=seq)
            except NotFoundError:  # deleted, or aged out of the stream
                return []
        try:
            held, _ = message_events(subjects, raw.subject or "", seq, raw.data or b"", raw.headers)
        except msgspec.DecodeError:
            return []  # the consumer terminates it when it comes again
        return held

    batches: list[list[HeldEvent]] = []
    batch: list[HeldEvent] = []
    for held in await asyncio.gather(*(read(s) for s in range(low + 1, high + 1))):
        if batch and len(batch) + len(held) > batch_size:
            batches.append(batch)
            batch = []
        batch.extend(held)
    if batch:
        batches.append(batch)
    return batches
