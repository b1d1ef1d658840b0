"""Replies larger than one bus message go through the blobs object store (real nats-server): the
worker's relay and whole answers put them there, the edge's dispatcher reads them back whole and
deletes them; one nobody waits for is deleted at once, and one whose blob is gone is a 502 that
still carries the reply's cost."""

from __future__ import annotations

import time

import pytest

from gateway.dispatcher import Dispatcher
from llmgw.blobs import Blobs, open_blobs
from llmgw.contracts import Chunks, Completed, Failed, Subjects, encode_internal, reply_blob_name
from tests.waiting import eventually
from workers.relay import ChunkRelay

pytestmark = pytest.mark.integration

BIG = 2 * 1024 * 1024  # bytes: twice NATS's default message limit


async def stored_names(blobs: Blobs) -> list[str]:
    try:
        return [info.name for info in await blobs.store.list(ignore_deletes=True)]
    except Exception:  # nats-py raises when the store is empty
        return []


@pytest.fixture
async def bus(nats_client, bus_prefix):
    subjects = Subjects(bus_prefix)
    blobs = Blobs(await open_blobs(nats_client.jetstream(), subjects.blobs_bucket), nats_client.max_payload)
    dispatcher = Dispatcher(nats_client, subjects, 5.0, blobs)
    await dispatcher.start()
    yield nats_client, blobs, dispatcher
    await dispatcher.stop()


async def test_a_stream_chunk_larger_than_a_message_reaches_the_edge_whole(bus) -> None:
    nc, blobs, dispatcher = bus
    assert nc.max_payload < BIG
    queue = dispatcher.open("req-chunk")
    relay = ChunkRelay(nc, dispatcher.reply_subject, "req-chunk", 1, interval=0.0, max_batch=1, blobs=blobs)
    huge = b'{"type":"response.completed","response":{"output":"' + b"x" * BIG + b'"}}'
    await relay.add(b'{"type":"response.created"}')
    await relay.add(huge)
    await relay.finish(cost=0.25, deployment_id="d1", tokens=7)
    deadline = time.time() + 10
    replies = [await dispatcher.next_reply(queue, deadline) for _ in range(3)]
    assert all(isinstance(r, Chunks) and r.data_blob is None for r in replies)
    assert [r.data for r in replies if isinstance(r, Chunks)] == [[b'{"type":"response.created"}'], [huge], []]
    assert isinstance(replies[-1], Chunks) and replies[-1].done and replies[-1].cost == 0.25
    assert await stored_names(blobs) == []  # read, then deleted
    dispatcher.close("req-chunk")


async def test_a_whole_answer_larger_than_a_message_reaches_the_edge_whole(bus) -> None:
    nc, blobs, dispatcher = bus
    queue = dispatcher.open("req-whole")
    body = b'{"object":"list","data":[' + b"0.5," * (BIG // 4) + b"0.5]}"
    reply = Completed(request_id="req-whole", attempt=2, body=body, cost=0.5, deployment_id="d1", tokens=9)
    packed = await blobs.pack_completed(reply)
    assert (packed.body, packed.body_blob) == (b"", reply_blob_name("req-whole", 2))
    assert len(encode_internal(packed)) < 1024
    await nc.publish(dispatcher.reply_subject, encode_internal(packed))
    got = await dispatcher.next_reply(queue, time.time() + 10)
    assert got == reply  # the body back, the blob's name gone
    assert await stored_names(blobs) == []
    dispatcher.close("req-whole")


async def test_a_big_reply_nobody_waits_for_leaves_no_blob(bus) -> None:
    nc, blobs, dispatcher = bus
    late = await blobs.pack_completed(Completed(request_id="req-gone", body=b"y" * BIG))
    assert late.body_blob is not None and await stored_names(blobs) == [late.body_blob]
    await nc.publish(dispatcher.reply_subject, encode_internal(late))  # its request was answered already

    async def none_left() -> bool:
        return await stored_names(blobs) == []

    await eventually(none_left, "the edge to delete the blob of a reply nobody reads", 10)

    # A reply queued but never read (its client went away) loses its blob when the request closes.
    queue = dispatcher.open("req-closed")
    unread = await blobs.pack_completed(Completed(request_id="req-closed", body=b"z" * BIG))
    await nc.publish(dispatcher.reply_subject, encode_internal(unread))
    await eventually(lambda: not queue.empty(), "the reply to be queued", 10)
    dispatcher.close("req-closed")
    await eventually(none_left, "the edge to delete the blob of a closed request's reply", 10)


async def test_a_reply_whose_blob_is_gone_is_a_502_that_keeps_its_cost(bus) -> None:
    nc, blobs, dispatcher = bus
    queue = dispatcher.open("req-lost")
    packed = await blobs.pack_completed(Completed(request_id="req-lost", body=b"q" * BIG, cost=0.75, tokens=3))
    assert packed.body_blob is not None
    await blobs.delete(packed.body_blob)  # (expired)
    await nc.publish(dispatcher.reply_subject, encode_internal(packed))
    got = await dispatcher.next_reply(queue, time.time() + 10)
    assert isinstance(got, Failed)
    assert (got.status, got.code, got.cost, got.tokens) == (502, "upstream_error", 0.75, 3)
    dispatcher.close("req-lost")
