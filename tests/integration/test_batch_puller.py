"""The batch queue's puller on a real nats-server: while the queue stays empty it looks less and
less often, up to its longest pause, and batch work that comes is taken and brings the short
pause back. The interactive puller asks again once per expired pull. While an edge has interactive
traffic, batch work is taken one request at a time."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from llmgw import bus
from llmgw.contracts import Priority, Subjects
from llmgw.interactive_load import InteractiveTraffic
from tests.waiting import eventually
from workers import puller as puller_module
from workers.puller import BATCH_IDLE_POLL, BATCH_POLL, BatchPuller, ContinuousPuller

pytestmark = pytest.mark.integration


async def test_an_empty_batch_queue_is_looked_at_less_often_until_work_comes(nats_client, bus_prefix) -> None:
    subjects = Subjects(bus_prefix)
    js = nats_client.jetstream()
    await bus.ensure_request_stream(js, subjects)
    durable = subjects.worker_consumer("openai", Priority.BATCH)
    await bus.ensure_pull_consumer(
        js, subjects.requests_stream, durable, subjects.request("openai", Priority.BATCH), ack_wait=30, max_ack_pending=64
    )
    looks = 0
    taken: list[Msg] = []

    async def interactive_waiting() -> bool:
        nonlocal looks
        looks += 1
        return False

    puller = BatchPuller(
        nats_client, subjects.requests_stream, durable, 4, lambda: 0, taken.append, interactive_waiting=interactive_waiting
    )
    await puller.start()
    try:
        await eventually(lambda: puller._quiet_for == BATCH_IDLE_POLL, "the longest pause", timeout=30)
        assert looks >= 4  # 0.5, 1, 2, 4 s: each empty look doubled the pause

        await js.publish(subjects.request("openai", Priority.BATCH), b"batch work")
        await eventually(lambda: len(taken) == 1, "the batch request taken", timeout=2 * BATCH_IDLE_POLL + 5)
        assert taken[0].data == b"batch work"
        await taken[0].ack()
        # Taken work brought the short pause back: the next empty look waits BATCH_POLL again.
        await eventually(lambda: puller._quiet_for == BATCH_POLL, "the short pause again", timeout=2 * BATCH_IDLE_POLL + 5)
    finally:
        await puller.stop()
        await puller.close()


async def test_an_expired_pull_is_asked_again_once(nats_client, bus_prefix, monkeypatch) -> None:
    """A pull's 408 comes when it expires on the server: the puller asks again once then, and that
    408 closes the count of its own pull, not of the one asked for in its place."""
    monkeypatch.setattr(puller_module, "PULL_EXPIRES", 0.5)
    subjects = Subjects(bus_prefix)
    js = nats_client.jetstream()
    await bus.ensure_request_stream(js, subjects)
    durable = subjects.worker_consumer("openai", Priority.INTERACTIVE)
    await bus.ensure_pull_consumer(
        js, subjects.requests_stream, durable, subjects.request("openai", Priority.INTERACTIVE), ack_wait=30, max_ack_pending=64
    )
    taken: list[Msg] = []
    puller = ContinuousPuller(nats_client, subjects.requests_stream, durable, 4, lambda: 0, taken.append)
    asked: list[bytes] = []

    async def seen(msg: Msg) -> None:
        asked.append(msg.data)

    await nats_client.subscribe(puller.api_subject, cb=seen)
    await puller.start()
    try:
        await eventually(lambda: len(asked) >= 5, "five pulls, one after each expiry", timeout=30)
        info = await js.consumer_info(subjects.requests_stream, durable)
        assert info.num_waiting == 1 and puller.outstanding() == 4  # one pull open, and counted
        await js.publish(subjects.request("openai", Priority.INTERACTIVE), b"work")
        await eventually(lambda: len(taken) == 1, "the request taken", timeout=5)
        await taken[0].ack()
    finally:
        await puller.stop()
        await puller.close()


async def test_while_an_edge_has_interactive_traffic_the_batch_puller_asks_for_one_request_at_most(
    nats_client, bus_prefix
) -> None:
    """An edge's interactive count reaches the worker over NATS: while it is recent, batch work is
    asked for only up to `yield_lines` batch requests in flight; once it is over, up to capacity."""
    subjects = Subjects(bus_prefix)
    js = nats_client.jetstream()
    await bus.ensure_request_stream(js, subjects)
    durable = subjects.worker_consumer("openai", Priority.BATCH)
    await bus.ensure_pull_consumer(
        js, subjects.requests_stream, durable, subjects.request("openai", Priority.BATCH), ack_wait=30, max_ack_pending=64
    )
    edge = InteractiveTraffic(subjects, "edge-test", quiet_after=3.0)
    heard = InteractiveTraffic(subjects, "worker-test", quiet_after=3.0)
    await edge.start(nats_client, publish=True)
    await heard.start(nats_client, publish=False)
    taken: list[Msg] = []

    async def interactive_waiting() -> bool:
        return False

    puller = BatchPuller(
        nats_client,
        subjects.requests_stream,
        durable,
        8,
        lambda: len(taken),
        taken.append,
        interactive_waiting=interactive_waiting,
        traffic=heard,
        batch_in_use=lambda: len(taken),
        yield_lines=1,
    )
    try:
        assert not heard.present() and puller.free() == 8
        edge.arrived()  # an interactive request published on the edge
        await eventually(lambda: heard.present() and heard.rate() == 1, "the edge's count heard")
        assert puller.free() == 1
        for n in range(3):
            await js.publish(subjects.request("openai", Priority.BATCH), f"line {n}".encode())
        await puller.start()
        await eventually(lambda: len(taken) == 1, "one batch request taken")
        assert puller.free() == 0  # one in flight: no more is asked for while the traffic lasts
        await eventually(lambda: not heard.present(), "the traffic over", timeout=10)
        puller.capacity_freed()
        await eventually(lambda: len(taken) == 3, "the rest taken at once")
        for msg in taken:
            await msg.ack()
    finally:
        await puller.stop()
        await puller.close()
        await edge.stop()
        await heard.stop()
