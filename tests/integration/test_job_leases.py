"""Background jobs' leases (gateway/job_leases.py) and their kept replies (gateway/job_replies.py,
workers/job_replies.py) on a real nats-server: a lapsed lease is taken by exactly one of two
edges trying at once; a held lease is renewed and never lapses; a body too large for a KV record
waits in the blobs store; a worker's replies, published acked to the job's subject, are read
from the first by every edge that follows them, in order, a retried publish kept once."""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec

from gateway.job_leases import JobLeases
from gateway.job_replies import JobReplies
from llmgw.blobs import Blobs, open_blobs
from llmgw.bus import AckedPublisher
from llmgw.contracts import BackgroundJob, Caller, Chunks, Completed, JobKind, Subjects, UpstreamRequest, encode_internal
from tests.waiting import eventually
from workers.job_replies import JobReplies as WorkerJobReplies


def a_job(request_id: str) -> BackgroundJob:
    return BackgroundJob(
        owner="edge-a",
        expires_at=0.0,
        kind=JobKind.RESPONSE,
        request_id=request_id,
        key_hash="k" * 64,
        deployment_id="d1",
        received_at=time.time(),
        deadline=time.time() + 60,
        created_at=time.time(),
    )


async def started(nc, prefix: str, lease_seconds: float) -> tuple[JobLeases, Blobs]:
    subjects = Subjects(prefix)
    js = nc.jetstream()
    blobs = Blobs(await open_blobs(js, subjects.blobs_bucket), nc.max_payload)
    leases = JobLeases(subjects, lease_seconds)
    await leases.start(js, blobs, nc.max_payload)
    return leases, blobs


async def lapsed(leases: JobLeases) -> list[tuple[BackgroundJob, int]]:
    return [found async for found in leases.lapsed(set())]


async def test_a_lapsed_lease_is_taken_by_one_edge_only(nats_client, bus_prefix) -> None:
    leases, _ = await started(nats_client, bus_prefix, lease_seconds=1.0)
    job, _revision = await leases.begin(a_job("req-1"), b'{"model":"m"}', "d1", time.time(), time.time() + 60)
    assert job.owner == "edge-a" and job.body == b'{"model":"m"}'
    assert await lapsed(leases) == []  # held for a second yet
    found = await eventually(lambda: lapsed(leases), "the lease lapsed", timeout=5, interval=0.1)
    (seen, revision), *_ = found
    assert seen.request_id == "req-1"
    taken = await asyncio.gather(leases.take(seen, "edge-b", revision), leases.take(seen, "edge-c", revision))
    assert sorted(t is None for t in taken) == [False, True]  # exactly one took it
    assert await lapsed(leases) == []  # (the taker holds it now)
    winner = "edge-b" if taken[0] is not None else "edge-c"
    assert await leases.holds("req-1", winner) and not await leases.holds("req-1", "edge-a")
    # The edge it was taken from (stalled, not dead) can neither end it nor free it
    await leases.free(job, "edge-a")
    assert await lapsed(leases) == []
    assert await leases.end(job, "edge-a") is False
    assert await leases.holds("req-1", winner)
    assert await leases.end(job, winner) is True
    assert not await leases.holds("req-1", winner)
    assert await lapsed(leases) == []
    await asyncio.sleep(1.1)
    assert await lapsed(leases) == []  # ended: nobody takes it again


async def test_a_held_lease_is_renewed_and_never_lapses(nats_client, bus_prefix) -> None:
    leases, _ = await started(nats_client, bus_prefix, lease_seconds=1.0)
    job, revision = await leases.begin(a_job("req-2"), b"{}", "d1", time.time(), time.time() + 60)
    holding = asyncio.create_task(leases.hold(job, "edge-a", revision))
    try:
        for _ in range(6):
            await asyncio.sleep(0.4)
            assert await lapsed(leases) == []
    finally:
        holding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holding
    await eventually(lambda: lapsed(leases), "the lease lapsed once no more renewed", timeout=5, interval=0.1)


async def test_a_large_body_waits_in_the_blobs_store(nats_client, bus_prefix) -> None:
    leases, blobs = await started(nats_client, bus_prefix, lease_seconds=5.0)
    body = b"x" * (nats_client.max_payload + 10)
    job, _ = await leases.begin(a_job("req-3"), body, "d1", time.time(), time.time() + 60)
    assert job.body == b"" and job.body_blob is not None
    assert await leases.body(job) == body
    assert await leases.end(job, "edge-a") is True
    assert await blobs.get(job.body_blob) is None


async def test_a_workers_replies_are_read_from_the_first_by_every_follower(nats_client, bus_prefix) -> None:
    subjects = Subjects(bus_prefix)
    js = nats_client.jetstream()
    blobs = Blobs(await open_blobs(js, subjects.blobs_bucket), nats_client.max_payload)
    replies = JobReplies(subjects, request_timeout=30)
    await replies.start(js, blobs)
    publisher = AckedPublisher(nats_client)
    await publisher.start()
    request = UpstreamRequest(
        request_id="req-4",
        reply_to="unused",
        operation="chat",
        model_group="m",
        deployment_id="d1",
        body=b"{}",
        stream=True,
        include_usage=False,
        deadline=time.time() + 30,
        received_at=time.time(),
        caller=Caller(key_hash="k"),
        reply_stream=subjects.job_replies("req-4"),
    )
    assert WorkerJobReplies(publisher).sender(msgspec.structs.replace(request, reply_stream=None), 1) is None
    send = WorkerJobReplies(publisher).sender(request, 1)
    assert send is not None
    sent = [Chunks(request_id="req-4", seq=i, data=[b"c%d" % i]) for i in range(3)]
    async with replies.follow("req-4") as first_edge:
        for message in sent:
            await send(encode_internal(message))
        got = [await asyncio.wait_for(first_edge.get(), 5) for _ in sent]
        assert got == sent
    # the same publish again (its ack lost, say): kept once, by its de-duplication id
    again = WorkerJobReplies(publisher).sender(request, 1)
    assert again is not None
    await again(encode_internal(sent[0]))
    whole = Completed(request_id="req-4", body=b"{}")
    last = WorkerJobReplies(publisher).sender(request, 1, ".whole")
    assert last is not None
    await last(encode_internal(whole))
    async with replies.follow("req-4") as taking_over:  # an edge taking the job over
        got = [await asyncio.wait_for(taking_over.get(), 5) for _ in range(4)]
        assert got == [*sent, whole]
        await asyncio.sleep(0.2)
        assert taking_over.empty()
    await replies.purge("req-4")
    async with replies.follow("req-4") as after_end:
        await asyncio.sleep(0.3)
        assert after_end.empty()
    await publisher.stop()


async def test_a_reply_kept_in_a_blob_is_read_by_each_follower_then_deleted_with_the_job(nats_client, bus_prefix) -> None:
    subjects = Subjects(bus_prefix)
    js = nats_client.jetstream()
    blobs = Blobs(await open_blobs(js, subjects.blobs_bucket), nats_client.max_payload)
    replies = JobReplies(subjects, request_timeout=30)
    await replies.start(js, blobs)
    big = [b"x" * (nats_client.max_payload + 1)]
    packed = await blobs.pack_chunks(Chunks(request_id="req-5", seq=0, data=big))
    assert packed.data_blob is not None and packed.data == []
    await js.publish(subjects.job_replies("req-5"), encode_internal(packed))
    for _ in range(2):  # the edge running the job, then one taking it over: each reads it whole
        async with replies.follow("req-5") as queue:
            reply = await asyncio.wait_for(queue.get(), 5)
            assert isinstance(reply, Chunks) and reply.data == big and reply.data_blob is None
    await replies.purge("req-5")
    assert await blobs.get(packed.data_blob) is None
