"""A background stream's kept events on a real nats-server: an event larger than one bus message
is kept in pieces and read back whole, in order, and a reader starting after an event number gets
each later event once."""

from __future__ import annotations

import time

import pytest

from gateway.responses.events import ResponseEvents
from llmgw.contracts import ResponseEvent, ResponseStreamEnd, Subjects

pytestmark = pytest.mark.integration

BIG = 2 * 1024 * 1024 + 17  # bytes: past twice NATS's default message limit


async def read_all(events: ResponseEvents, key: str, after: int) -> list[ResponseEvent]:
    return [event async for event in events.read(key, after, time.time() + 10)]


async def test_an_event_larger_than_a_message_is_kept_and_read_back_whole(nats_client, bus_prefix) -> None:
    events = ResponseEvents(Subjects(bus_prefix), retention=60, request_timeout=60)
    await events.start(nats_client.jetstream(), nats_client.max_payload)
    big = b"data: " + bytes(range(256)) * (BIG // 256) + b"\n\n"
    assert len(big) > nats_client.max_payload
    sent = [ResponseEvent(0, b"data: first\n\n"), ResponseEvent(1, big), ResponseEvent(2, b"data: last\n\n")]
    for event in sent:
        await events.append("resp_big", event)
    await events.append("resp_big", ResponseStreamEnd("completed"))

    read = await read_all(events, "resp_big", -1)
    assert len(read) > 3  # the big one came in pieces
    assert b"".join(event.data for event in read) == b"".join(event.data for event in sent)
    assert [event.sequence_number for event in read] == sorted(event.sequence_number for event in read)
    # Resumed after the big event: only the last one, once; resumed before it: the big one whole.
    assert [event.data for event in await read_all(events, "resp_big", 1)] == [b"data: last\n\n"]
    again = await read_all(events, "resp_big", 0)
    assert b"".join(event.data for event in again) == big + b"data: last\n\n"
