"""Whole answers lost while a node of a NATS cluster died are sent again (real nats-server).

A reply is core NATS: one written into a worker's connection to a node that just died, or sent
while the edge's subscription was gone (its own node died), never arrives. The worker keeps its
last whole answers a few seconds and sends them again after its reconnect, and when an edge back
on the bus asks (`ResendReplies`). Here "lost" is a reply published before the edge subscribed.
"""

from __future__ import annotations

import time

import nats
import pytest

from gateway.dispatcher import Dispatcher
from llmgw.blobs import Blobs, open_blobs
from llmgw.contracts import Completed, Subjects, decode_resend_replies, encode_internal
from workers.recent_replies import RecentReplies

pytestmark = pytest.mark.integration


def answer(request_id: str) -> bytes:
    return encode_internal(Completed(request_id=request_id, attempt=1, body=b'{"ok": true}'))


async def edge(nats_server, subjects: Subjects) -> tuple[nats.NATS, Dispatcher]:
    nc = await nats.connect(nats_server.url)
    blobs = Blobs(await open_blobs(nc.jetstream(), subjects.blobs_bucket), nc.max_payload)
    return nc, Dispatcher(nc, subjects, 5.0, blobs)


async def test_an_edge_back_on_the_bus_gets_the_answers_it_missed(nats_server, bus_prefix):
    subjects = Subjects(bus_prefix)
    worker_nc = await nats.connect(nats_server.url)
    edge_nc, dispatcher = await edge(nats_server, subjects)
    replies = RecentReplies(worker_nc)

    async def on_resend(msg) -> None:  # (as workers/runner.py wires it)
        await replies.resend_to(decode_resend_replies(msg.data).reply_subject)

    await worker_nc.subscribe(subjects.resend_replies, cb=on_resend)
    await worker_nc.flush()
    try:
        await replies.publish(dispatcher.reply_subject, answer("r-missed"))  # nobody listens yet: lost
        await replies.publish(subjects.reply("another-edge"), answer("r-other"))
        await worker_nc.flush()
        await dispatcher.start()
        waiting = dispatcher.open("r-missed")
        dispatcher.reconnected()
        reply = await dispatcher.next_reply(waiting, time.time() + 10)
        assert isinstance(reply, Completed) and reply.request_id == "r-missed" and reply.body == b'{"ok": true}'
        assert waiting.empty()  # only its own replies came back
    finally:
        await dispatcher.stop()
        await edge_nc.close()
        await worker_nc.close()


async def test_a_worker_back_on_the_bus_sends_its_last_answers_again(nats_server, bus_prefix):
    subjects = Subjects(bus_prefix)
    worker_nc = await nats.connect(nats_server.url)
    edge_nc, dispatcher = await edge(nats_server, subjects)
    replies = RecentReplies(worker_nc)
    try:
        replies.disconnected()
        await replies.publish(dispatcher.reply_subject, answer("r-written-into-a-dead-connection"))
        await worker_nc.flush()
        await dispatcher.start()
        waiting = dispatcher.open("r-written-into-a-dead-connection")
        replies.reconnected()
        reply = await dispatcher.next_reply(waiting, time.time() + 10)
        assert reply.request_id == "r-written-into-a-dead-connection"
    finally:
        replies.stop()
        await dispatcher.stop()
        await edge_nc.close()
        await worker_nc.close()
