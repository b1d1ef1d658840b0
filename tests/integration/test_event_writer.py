"""Two edges writing one background job's events at once, on a real nats-server: the edge that ran
the job stalled past its lease (not dead) and goes on where it was, while the edge that took the
job over writes the events after those kept (gateway/responses/event_writer.py). Every event is
kept once, in order; the stalled edge stops at its first write past the other's (JobTaken) and
its job is marked handed over (its relay must not cancel the worker), and the edge holding the
lease goes on past an entry the stalled one slipped in before it."""

from __future__ import annotations

import time

import pytest

from gateway.background import HANDED_OVER, BackgroundJobs, JobTaken
from gateway.responses.event_writer import EventWriter
from gateway.responses.events import ResponseEvents
from llmgw.contracts import ResponseEvent, Subjects

pytestmark = pytest.mark.integration


class Lease:
    """Which of the two edges holds the job's lease."""

    def __init__(self) -> None:
        self.holder = "a"

    def of(self, edge: str):
        async def holds() -> bool:
            return self.holder == edge

        return holds


def event(number: int, edge: str) -> bytes:
    return b'id: %d\ndata: {"from": "%s"}\n\n' % (number, edge.encode())


async def started(nats_client, bus_prefix: str) -> tuple[ResponseEvents, BackgroundJobs, BackgroundJobs]:
    subjects = Subjects(bus_prefix)
    events = ResponseEvents(subjects, retention=60, request_timeout=60)
    await events.start(nats_client.jetstream(), nats_client.max_payload)
    return events, BackgroundJobs(subjects), BackgroundJobs(subjects)


async def kept_numbers(events: ResponseEvents, key: str) -> list[tuple[int, bytes]]:
    return [(e.sequence_number, e.data) async for e in events.read(key, -1, time.time() + 10)]


async def test_a_stalled_edge_stops_at_its_first_write_after_the_edge_that_took_its_job_over(nats_client, bus_prefix) -> None:
    events, jobs_a, jobs_b = await started(nats_client, bus_prefix)
    lease, key = Lease(), "resp_stalled"
    a = EventWriter(events, jobs_a, key, lease.of("a"))
    for n in range(3):
        await a.event(n, event(n, "a"))
    lease.holder = "b"  # edge a stalls past its lease; edge b takes the job over
    b = EventWriter(events, jobs_b, key, lease.of("b"))
    b.resumed(await events.kept(key))
    for n in range(6):  # (b translates the job again from its first reply: 0 to 2 are kept already)
        await b.event(n, event(n, "b"))
    with pytest.raises(JobTaken):  # edge a wakes up and goes on where it was
        await a.event(3, event(3, "a"))
    assert jobs_a.reason(key) == HANDED_OVER
    await b.event(6, event(6, "b"))
    await b.end("completed")
    with pytest.raises(JobTaken):
        await a.end("completed")
    kept = await kept_numbers(events, key)
    assert kept == [(n, event(n, "a" if n < 3 else "b")) for n in range(7)]
    assert (await events.kept(key)).ended


async def test_the_edge_holding_the_lease_goes_on_past_an_event_the_stalled_edge_slipped_in(nats_client, bus_prefix) -> None:
    events, jobs_a, jobs_b = await started(nats_client, bus_prefix)
    lease, key = Lease(), "resp_slipped"
    a = EventWriter(events, jobs_a, key, lease.of("a"))
    for n in range(3):
        await a.event(n, event(n, "a"))
    lease.holder = "b"
    b = EventWriter(events, jobs_b, key, lease.of("b"))
    b.resumed(await events.kept(key))  # through 2
    await a.event(3, event(3, "a"))  # edge a, not yet knowing, keeps event 3 after b looked
    for n in range(6):
        await b.event(n, event(n, "b"))  # b meets a's event 3: reads again, keeps 4 and 5 only
    assert jobs_b.reason(key) is None
    with pytest.raises(JobTaken):
        await a.event(4, event(4, "a"))
    await b.end("completed")
    kept = await kept_numbers(events, key)
    assert kept == [(n, event(n, "a" if n < 4 else "b")) for n in range(6)]


async def test_an_event_kept_in_pieces_by_the_stalled_edge_is_finished_by_the_other(nats_client, bus_prefix) -> None:
    events, jobs_a, jobs_b = await started(nats_client, bus_prefix)
    lease, key = Lease(), "resp_pieces"
    a = EventWriter(events, jobs_a, key, lease.of("a"))
    await a.event(0, event(0, "a"))
    lease.holder = "b"
    b = EventWriter(events, jobs_b, key, lease.of("b"))
    b.resumed(await events.kept(key))
    big = b"data: " + b"x" * (3 * events.max_piece) + b"\n\n"
    # a keeps the first piece of event 1 only (the rest to come), as it stalls again in its write
    first_piece = ResponseEvent(1, big[: events.max_piece])
    a.kept.last = await events.append(key, first_piece, a.kept.last)
    await b.event(0, event(0, "b"))
    await b.event(1, big)  # meets a's piece: keeps the rest of event 1 only
    await b.event(2, event(2, "b"))
    await b.end("completed")
    read = await kept_numbers(events, key)
    assert [n for n, _ in read][:1] == [0] and sorted({n for n, _ in read}) == [0, 1, 2]
    assert b"".join(data for _, data in read) == event(0, "a") + big + event(2, "b")
