"""A background stream's kept events on a real nats-server: an event larger than one bus message
is kept in pieces and read back whole, in order, and a reader starting after an event number gets
each later event once."""

from __future__ import annotations

import time

import pytest

from gateway.responses.events import ResponseEvents
from llmgw.contracts import ResponseEvent, ResponseStreamEnd, Subjects, encode_internal

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
    last = 0
    for event in sent:
        last = await events.append("resp_big", event, last)
    await events.append("resp_big", ResponseStreamEnd("completed"), last)

    read = await read_all(events, "resp_big", -1)
    assert len(read) > 3  # the big one came in pieces
    assert b"".join(event.data for event in read) == b"".join(event.data for event in sent)
    assert [event.sequence_number for event in read] == sorted(event.sequence_number for event in read)
    # Resumed after the big event: only the last one, once; resumed before it: the big one whole.
    assert [event.data for event in await read_all(events, "resp_big", 1)] == [b"data: last\n\n"]
    again = await read_all(events, "resp_big", 0)
    assert b"".join(event.data for event in again) == big + b"data: last\n\n"


async def test_an_edge_taking_a_job_over_keeps_only_what_is_not_kept(nats_client, bus_prefix) -> None:
    """What of a job's events is kept, as an edge taking the job over reads it (`kept`): none;
    through the last whole event; an event cut short in its pieces (its edge died while writing
    it): only its rest is kept again, and a reader reads it whole; the end."""
    events = ResponseEvents(Subjects(bus_prefix), retention=60, request_timeout=60)
    await events.start(nats_client.jetstream(), nats_client.max_payload)
    piece = events.max_piece
    kept = await events.kept("resp_cut")
    assert (kept.through, kept.partial, kept.ended) == (-1, 0, False)
    first, big = b"data: first\n\n", b"data: " + b"x" * (3 * piece) + b"\n\n"
    first_seq = await events.append("resp_cut", ResponseEvent(0, first), 0)
    kept = await events.kept("resp_cut")
    assert (kept.through, kept.partial, kept.last) == (0, 0, first_seq)
    assert kept.rest(0, first) is None and kept.rest(1, big) == big
    # the first two pieces of event 1 only, as an edge dying in its write leaves them
    nats = nats_client.jetstream()
    for start in (0, piece):
        entry = ResponseEvent(1, big[start : start + piece])
        await nats.publish(Subjects(bus_prefix).response_events("resp_cut"), encode_internal(entry))
    kept = await events.kept("resp_cut")
    assert (kept.through, kept.partial) == (0, 2 * piece)
    rest = kept.rest(1, big)
    assert rest == big[2 * piece :]
    last = await events.append("resp_cut", ResponseEvent(1, rest), kept.last)
    last = await events.append("resp_cut", ResponseEvent(2, b"data: last\n\n"), last)
    await events.append("resp_cut", ResponseStreamEnd("completed"), last)
    read = await read_all(events, "resp_cut", -1)
    assert b"".join(event.data for event in read) == first + big + b"data: last\n\n"
    assert (await events.kept("resp_cut")).ended
