"""Usage batches (a worker's `UsageBatch` messages) metered by `python -m metering` on a real
nats-server and chdb, beside single-event messages: each event lands and settles once, also after a
batch is published again, redelivered, or left unacked by a crash; recovery reads whole messages."""

from __future__ import annotations

import asyncio
import random
import uuid
from functools import partial

import msgspec
import pytest

from llmgw.bus import ensure_pull_consumer, ensure_usage_stream
from llmgw.contracts import MSG_ID_HEADER, LedgerKind, LedgerRef, Subjects, UsageBatch, UsageEvent, encode_json, ledger_key
from llmgw.kv import open_bucket
from metering.recovery import unacked_events
from tests.integration.metering_support import Metering
from tests.integration.test_ledgers import RETENTION, applied_up_to, event, read_ledger, row_counts, running_sum, settled
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def publish_batch(js, subjects: Subjects, events: list[UsageEvent], traceparents: list[str | None] | None = None) -> int:
    """What a worker publishes: one message, an id of its own."""
    batch = UsageBatch(events=events, traceparents=traceparents or [])
    ack = await js.publish(subjects.usage_batch, encode_json(batch), headers={MSG_ID_HEADER: uuid.uuid4().hex})
    return ack.seq


async def publish_single(js, subjects: Subjects, ev: UsageEvent) -> int:
    """What the edge (a refusal) and older workers publish."""
    ack = await js.publish(subjects.usage(ev.provider, ev.status), encode_json(ev), headers={MSG_ID_HEADER: ev.request_id})
    return ack.seq


async def publish_mixed(js, subjects: Subjects, events: list[UsageEvent], rng: random.Random) -> int:
    """`events` in order, in batches of 1 to 12 and single messages; the last stream sequence."""
    seq, i = 0, 0
    while i < len(events):
        size = rng.randint(0, 12)
        if size == 0:
            seq, i = await publish_single(js, subjects, events[i]), i + 1
        else:
            seq, i = await publish_batch(js, subjects, events[i : i + size]), i + size
    return seq


@pytest.fixture
async def js(nc, bus_prefix):
    js = nc.jetstream()
    await ensure_usage_stream(js, Subjects(bus_prefix), RETENTION)
    return js


@pytest.fixture
async def kv(js, bus_prefix):
    return await open_bucket(js, Subjects(bus_prefix).budgets_bucket)


@pytest.fixture
async def metering(nats_server, bus_prefix, tmp_path):
    m = Metering(
        nats_server.url,
        tmp_path,
        prefix=bus_prefix,
        LLMGW_METERING_FLUSH_INTERVAL="0.05",
        LLMGW_METERING_BATCH_SIZE="40",
        LLMGW_METERING_ACK_WAIT="3",
    )
    yield m
    assert m.stop() in (0, None), m.log()


async def test_batches_and_single_events_settle_every_event_once_in_order(nc, js, kv, metering) -> None:
    token = "tok" + uuid.uuid4().hex[:8]
    keys = [ledger_key(LedgerKind.KEY, token), ledger_key(LedgerKind.TEAM, "team-b")]
    models = ("gpt-4", "claude-3")
    events = [
        event({k: LedgerRef() for k in keys}, cost=0.000137 * (i % 17) + 0.0000031 * i, model_group=models[i % 2], key_hash=token)
        for i in range(300)
    ]
    rng = random.Random(7)
    await publish_mixed(js, metering.subjects, events[:150], rng)
    metering.start()
    last = await publish_mixed(js, metering.subjects, events[150:], rng)
    await eventually(lambda: settled(js, metering.subjects), "every message settled")

    for key in keys:
        _, led = await read_ledger(kv, key)
        assert led.spent == running_sum([e.cost for e in events]), key  # summed in (sequence, index) order
        for model in models:
            assert led.model_spend[model] == running_sum([e.cost for e in events if e.model_group == model])
        assert led.applied_seq == last
    assert await row_counts(nc, metering.subjects, [e.request_id for e in events]) == {"rows": 300, "ids": 300}


async def test_a_batch_published_again_or_redelivered_counts_once(nc, js, kv, metering) -> None:
    key = ledger_key(LedgerKind.KEY, "tok" + uuid.uuid4().hex[:8])
    events = [event({key: LedgerRef(max_budget=10.0)}, cost=c) for c in (0.25, 0.125, 0.0625)]
    metering.start()
    await publish_batch(js, metering.subjects, events)
    await eventually(lambda: settled(js, metering.subjects), "the batch settled")
    revision, led = await read_ledger(kv, key)
    assert led.spent == 0.25 + 0.125 + 0.0625

    # The batch again under another id (stored twice), one of its requests retried by another
    # worker, and its first event as a single message: nothing changes.
    await publish_batch(js, metering.subjects, events)
    retried = msgspec.structs.replace(events[1], attempt=2, cost=0.5, worker_id="w2")
    await publish_batch(js, metering.subjects, [retried, event({}, cost=0.0)])
    await publish_single(js, metering.subjects, events[0])
    await eventually(lambda: settled(js, metering.subjects), "the copies settled")
    _, again = await read_ledger(kv, key)
    assert again.spent == led.spent
    assert await row_counts(nc, metering.subjects, [e.request_id for e in events]) == {"rows": 3, "ids": 3}

    # Every message once more (the consumer deleted): neither the rows nor the ledger change.
    revision, led = await read_ledger(kv, key)
    assert metering.stop() == 0, metering.log()
    await js.delete_consumer(metering.subjects.usage_stream, metering.subjects.metering_consumer)
    metering.start()
    await eventually(lambda: settled(js, metering.subjects), "the full redelivery settled")
    assert await read_ledger(kv, key) == (revision, led)  # not even rewritten
    assert await row_counts(nc, metering.subjects, [e.request_id for e in events]) == {"rows": 3, "ids": 3}


async def test_an_invalid_event_of_a_batch_is_dropped_alone(nc, js, metering) -> None:
    good = [event({}, cost=0.1), event({}, cost=0.2)]
    bad = event({}, cost=0.3, key_hash="")
    metering.start()
    await publish_batch(js, metering.subjects, [good[0], bad, good[1]])
    await js.publish(metering.subjects.usage_batch, b'{"events": "not a list"}', headers={MSG_ID_HEADER: uuid.uuid4().hex})
    await eventually(lambda: settled(js, metering.subjects), "both messages settled")
    ids = [e.request_id for e in (*good, bad)]
    assert await row_counts(nc, metering.subjects, ids) == {"rows": 2, "ids": 2}
    assert metering.log().count('"usage_event_rejected"') == 2


async def test_crashes_mid_way_through_batches_neither_lose_nor_double(nc, js, kv, metering) -> None:
    # As tests/integration/test_ledgers.py's crash test, with most events in batches: a restart
    # settles what its predecessor left unacked (metering/recovery.py) before anything newer.
    metering.env["LLMGW_METERING_ACK_WAIT"] = "8"
    token = "tok" + uuid.uuid4().hex[:8]
    keys = [ledger_key(LedgerKind.KEY, token), ledger_key(LedgerKind.TEAM, "crash-team-b")]
    refs = {k: LedgerRef() for k in keys}
    events = [event(refs, cost=0.001 * (i % 7) + 0.0001, key_hash=token) for i in range(2400)]
    rng = random.Random(11)
    await publish_mixed(js, metering.subjects, events[:900], rng)
    published = 900
    for crash, (delay, how) in enumerate(((0.0, "kill"), (0.03, "stop"), (0.11, "kill"))):
        metering.start()
        _, before = await read_ledger(kv, keys[0])
        floor = before.applied_seq if before else 0
        await eventually(partial(applied_up_to, kv, keys[0], floor + 20), f"batches settled before stop {crash}")
        await asyncio.sleep(delay)  # how far into the next batches the stop comes: the behaviour under test
        if how == "kill":
            metering.proc.kill()
        else:
            assert metering.stop() == 0, metering.log()
        stream = await js.stream_info(metering.subjects.usage_stream)
        info = await js.consumer_info(metering.subjects.usage_stream, metering.subjects.metering_consumer)
        assert info.ack_floor.stream_seq < stream.state.last_seq  # stopped mid-way
        await publish_mixed(js, metering.subjects, events[published : published + 500], rng)
        published += 500
    metering.start()
    await eventually(lambda: settled(js, metering.subjects), "everything settled after the restarts", timeout=60)

    for key in keys:
        _, led = await read_ledger(kv, key)
        assert led.spent == running_sum([e.cost for e in events]), key
    assert await row_counts(nc, metering.subjects, [e.request_id for e in events]) == {"rows": 2400, "ids": 2400}


async def test_recovery_reads_unacked_batches_whole_and_in_order(nc, js, bus_prefix) -> None:
    subjects = Subjects(bus_prefix)
    await ensure_pull_consumer(js, subjects.usage_stream, subjects.metering_consumer, subjects.usage_wildcard, 30.0, 100)
    trace = f"00-{uuid.uuid4().hex}-{'1' * 16}-01"
    sizes = (3, 2, 1)
    messages = [[event({}, cost=0.1) for _ in range(n)] for n in sizes]
    seqs = [await publish_batch(js, subjects, m, [trace] * len(m)) for m in messages]
    single = event({}, cost=0.2)
    ack = await js.publish(
        subjects.usage(single.provider, single.status), encode_json(single), headers={MSG_ID_HEADER: "s", "traceparent": trace}
    )
    sub = await js.pull_subscribe_bind(subjects.metering_consumer, stream=subjects.usage_stream)
    got = await sub.fetch(4, timeout=5)  # delivered and left unacked, as by a process that crashed
    assert len(got) == 4

    batches = await unacked_events(js, subjects, batch_size=4)
    # No message is split: 3 | 2 + 1 + 1
    assert [[(h.seq, h.position) for h in b] for b in batches] == [
        [(seqs[0], 0), (seqs[0], 1), (seqs[0], 2)],
        [(seqs[1], 0), (seqs[1], 1), (seqs[2], 0), (ack.seq, 0)],
    ]
    assert [h.event for b in batches for h in b] == [*messages[0], *messages[1], *messages[2], single]
    assert {h.traceparent for b in batches for h in b} == {trace}
    await sub.unsubscribe()
