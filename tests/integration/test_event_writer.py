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


class TwoEdges:
    """Edge a's writer kept events 0 to `written - 1` of job `key`, then stalled past its lease;
    edge b took the job over (the lease is b's) and read what is kept (`b.resumed`)."""

    def __init__(self, events: ResponseEvents, subjects: Subjects, key: str) -> None:
        self.events, self.key, self.holder = events, key, "a"
        self.jobs_a, self.jobs_b = BackgroundJobs(subjects), BackgroundJobs(subjects)
        self.a = EventWriter(events, self.jobs_a, key, self._holds("a"))
        self.b = EventWriter(events, self.jobs_b, key, self._holds("b"))

    def _holds(self, edge: str):
        async def holds() -> bool:
            return self.holder == edge

        return holds

    async def stall_a_after(self, written: int) -> None:
        for n in range(written):
            await self.a.event(n, event(n, "a"))
        self.holder = "b"
        self.b.resumed(await self.events.kept(self.key))

    async def kept(self) -> list[tuple[int, bytes]]:
        return [(e.sequence_number, e.data) async for e in self.events.read(self.key, -1, time.time() + 10)]


def event(number: int, edge: str) -> bytes:
    return b'id: %d\ndata: {"from": "%s"}\n\n' % (number, edge.encode())


async def two_edges(nats_client, bus_prefix: str, key: str, written: int) -> TwoEdges:
    subjects = Subjects(bus_prefix)
    events = ResponseEvents(subjects, retention=60, request_timeout=60)
    await events.start(nats_client.jetstream(), nats_client.max_payload)
    edges = TwoEdges(events, subjects, key)
    await edges.stall_a_after(written)
    return edges


async def test_a_stalled_edge_stops_at_its_first_write_after_the_edge_that_took_its_job_over(nats_client, bus_prefix) -> None:
    edges = await two_edges(nats_client, bus_prefix, "resp_stalled", written=3)
    a, b, key = edges.a, edges.b, edges.key
    for n in range(6):  # (b translates the job again from its first reply: 0 to 2 are kept already)
        await b.event(n, event(n, "b"))
    with pytest.raises(JobTaken):  # edge a wakes up and goes on where it was
        await a.event(3, event(3, "a"))
    assert edges.jobs_a.reason(key) == HANDED_OVER
    await b.event(6, event(6, "b"))
    await b.end("completed")
    with pytest.raises(JobTaken):
        await a.end("completed")
    assert await edges.kept() == [(n, event(n, "a" if n < 3 else "b")) for n in range(7)]
    assert (await edges.events.kept(key)).ended


async def test_the_edge_holding_the_lease_goes_on_past_an_event_the_stalled_edge_slipped_in(nats_client, bus_prefix) -> None:
    edges = await two_edges(nats_client, bus_prefix, "resp_slipped", written=3)
    a, b = edges.a, edges.b  # (b read the events kept through 2)
    await a.event(3, event(3, "a"))  # edge a, not yet knowing, keeps event 3 after b looked
    for n in range(6):
        await b.event(n, event(n, "b"))  # b meets a's event 3: reads again, keeps 4 and 5 only
    assert edges.jobs_b.reason(edges.key) is None
    with pytest.raises(JobTaken):
        await a.event(4, event(4, "a"))
    await b.end("completed")
    assert await edges.kept() == [(n, event(n, "a" if n < 4 else "b")) for n in range(6)]


async def test_an_event_kept_in_pieces_by_the_stalled_edge_is_finished_by_the_other(nats_client, bus_prefix) -> None:
    edges = await two_edges(nats_client, bus_prefix, "resp_pieces", written=1)
    a, b, events = edges.a, edges.b, edges.events
    big = b"data: " + b"x" * (3 * events.max_piece) + b"\n\n"
    # a keeps the first piece of event 1 only (the rest to come), as it stalls again in its write
    first_piece = ResponseEvent(1, big[: events.max_piece])
    a.kept.last = await events.append(edges.key, first_piece, a.kept.last)
    await b.event(0, event(0, "b"))
    await b.event(1, big)  # meets a's piece: keeps the rest of event 1 only
    await b.event(2, event(2, "b"))
    await b.end("completed")
    read = await edges.kept()
    assert [n for n, _ in read][:1] == [0] and sorted({n for n, _ in read}) == [0, 1, 2]
    assert b"".join(data for _, data in read) == event(0, "a") + big + event(2, "b")
