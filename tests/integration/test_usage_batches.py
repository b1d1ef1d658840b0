"""The worker's usage batcher (workers/usage_batches.py) against a real nats-server: which events
share a message, a publish retried until the stream stores it, and each waiter let go once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from structlog.testing import capture_logs

from llmgw.bus import AckedPublisher, ensure_usage_stream
from llmgw.contracts import MSG_ID_HEADER, Subjects, UsageBatch, decode_usage_batch
from tests.integration.metering_support import RETENTION, usage_event
from tests.waiting import eventually
from workers.usage_batches import UsageBatcher

pytestmark = pytest.mark.integration


@pytest.fixture
async def publisher(nc):
    publisher = AckedPublisher(nc)
    await publisher.start()
    yield publisher
    await publisher.stop()


@pytest.fixture
def subjects(bus_prefix) -> Subjects:
    return Subjects(bus_prefix)


async def stored(js, subjects: Subjects) -> list[tuple[UsageBatch, dict[str, str]]]:
    """Every message of the usage stream: (batch, headers), in stream order."""
    state = (await js.stream_info(subjects.usage_stream)).state
    found = []
    for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
        raw = await js.get_msg(subjects.usage_stream, seq=seq)
        assert raw.subject == subjects.usage_batch
        found.append((decode_usage_batch(raw.data), dict(raw.headers or {})))
    return found


def request_ids(batches: list[tuple[UsageBatch, dict[str, str]]]) -> list[str]:
    return [event.request_id for batch, _ in batches for event in batch.events]


async def test_events_handed_in_during_one_turn_leave_in_one_message(js, publisher, subjects) -> None:
    await ensure_usage_stream(js, subjects, RETENTION)
    batcher = UsageBatcher(publisher, subjects.usage_batch)
    events = [usage_event() for _ in range(10)]
    traces = [f"00-{uuid.uuid4().hex}-{i:016x}-01" if i % 3 == 0 else None for i in range(10)]
    await asyncio.gather(*(batcher.add(e, t) for e, t in zip(events, traces, strict=True)))

    [(batch, headers)] = await stored(js, subjects)
    assert batch.events == events
    assert [batch.traceparent(i) for i in range(10)] == traces
    assert headers[MSG_ID_HEADER].startswith("usage-")
    # A later event goes in a message of its own, with an id of its own.
    await batcher.add(usage_event())
    (_, first), (again, second) = await stored(js, subjects)
    assert len(again.events) == 1 and again.traceparents == [] and first[MSG_ID_HEADER] != second[MSG_ID_HEADER]


async def test_events_gather_while_batches_wait_for_their_acks(js, publisher, subjects) -> None:
    await ensure_usage_stream(js, subjects, RETENTION)
    batcher = UsageBatcher(publisher, subjects.usage_batch, max_events=4, in_flight=2)
    events = [usage_event() for _ in range(10)]
    await asyncio.gather(*(batcher.add(e) for e in events))

    batches = await stored(js, subjects)
    assert [len(batch.events) for batch, _ in batches] == [4, 4, 2]
    assert sorted(request_ids(batches)) == sorted(e.request_id for e in events)


async def test_a_batch_over_the_payload_limit_is_split(js, publisher, subjects) -> None:
    await ensure_usage_stream(js, subjects, RETENTION)
    batcher = UsageBatcher(publisher, subjects.usage_batch, max_payload=2000)
    events = [usage_event() for _ in range(8)]
    await asyncio.gather(*(batcher.add(e) for e in events))

    batches = await stored(js, subjects)
    assert len(batches) > 1
    assert request_ids(batches) == [e.request_id for e in events]


async def test_a_failed_publish_is_retried_until_stored_and_each_waiter_is_let_go_once(js, publisher, subjects) -> None:
    errors: list[dict] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        batcher = UsageBatcher(publisher, subjects.usage_batch)
        events = [usage_event() for _ in range(5)]
        released = [0] * len(events)

        async def add(index: int) -> None:
            await batcher.add(events[index])
            released[index] += 1

        with capture_logs() as logs:
            # No stream takes the subject yet: the publish fails and is tried again.
            tasks = [asyncio.create_task(add(i)) for i in range(len(events))]
            retries = await eventually(
                lambda: [e for e in logs if e["event"] == "usage_publish_retry"], "a failed publish to be retried"
            )
            tasks[0].cancel()  # its request's task goes away meanwhile (its event is in the batch all the same)
            assert not any(t.done() for t in tasks[1:])
            await ensure_usage_stream(js, subjects, RETENTION)
            await asyncio.gather(*tasks[1:])
            await asyncio.gather(tasks[0], return_exceptions=True)

        [(batch, headers)] = await stored(js, subjects)
        assert batch.events == events
        assert {r["msg_id"] for r in retries} == {headers[MSG_ID_HEADER]}  # every try had the batch's one id
        assert released == [0, 1, 1, 1, 1] and tasks[0].cancelled()
        assert errors == []
    finally:
        loop.set_exception_handler(previous)
