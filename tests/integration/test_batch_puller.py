"""The batch queue's puller on a real nats-server: while the queue stays empty it looks less and
less often, up to its longest pause, and batch work that comes is taken and brings the short
pause back. The interactive puller asks again once per expired pull."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from llmgw import bus
from llmgw.contracts import Priority, Subjects
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
