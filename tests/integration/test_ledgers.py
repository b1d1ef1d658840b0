"""Budget ledgers settled by metering (`python -m metering`, real nats-server and chdb).

Usage events naming ledgers are published the way a worker does; the ledgers are read back from
the budgets KV bucket, alerts from their subject, rows through metering's query service. Sums are
compared exactly: metering adds costs in stream order, as the expected sums here do.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from functools import partial

import msgspec
import pytest
from nats.js.errors import KeyNotFoundError

from llmgw.bus import ensure_usage_stream
from llmgw.contracts import (
    MSG_ID_HEADER,
    BudgetAlert,
    BudgetLedger,
    LedgerKind,
    LedgerRef,
    Reservation,
    Subjects,
    UsageEvent,
    encode_json,
    ledger_key,
)
from llmgw.kv import open_bucket
from llmgw.metering_query import query_metering
from tests.integration.metering_support import Metering
from tests.waiting import eventually

pytestmark = pytest.mark.integration

RETENTION = 30 * 86400.0  # metering's default stream max age: the stream is declared the same way
MODELS = ("gpt-4", "claude-3", "mistral-large")

_ledger = msgspec.json.Decoder(BudgetLedger)
_alert = msgspec.json.Decoder(BudgetAlert)


# ----------------------------------------------------------------------------------- helpers


def event(ledgers: dict[str, LedgerRef], cost: float, **overrides) -> UsageEvent:
    fields = dict(
        request_id=uuid.uuid4().hex, ts=round(time.time(), 3), key_hash="kh", operation="chat", model_group="gpt-4",
        deployment_id="dep-a", provider="openai", upstream_model="gpt-4o", prompt_tokens=10, completion_tokens=20,
        cost=cost, latency_ms=12.5, status="success", http_status=200, usage_source="provider", stream=False,
        ledgers=ledgers,
    )  # fmt: skip
    return UsageEvent(**{**fields, **overrides})


async def publish(js, subjects: Subjects, ev: UsageEvent, msg_id: bool = True) -> int:
    headers = {MSG_ID_HEADER: ev.request_id} if msg_id else None
    ack = await js.publish(subjects.usage(ev.provider, ev.status), encode_json(ev), headers=headers)
    return ack.seq


async def settled(js, subjects: Subjects) -> bool:
    """Metering was given every stored usage message and acked all of them."""
    info = await js.consumer_info(subjects.usage_stream, subjects.metering_consumer)
    stream = await js.stream_info(subjects.usage_stream)
    return info.num_pending == 0 and info.num_ack_pending == 0 and info.ack_floor.stream_seq == stream.state.last_seq


async def read_ledger(kv, key: str) -> tuple[int, BudgetLedger | None]:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return 0, None
    return entry.revision, _ledger.decode(entry.value)


async def row_counts(nc, subjects: Subjects, request_ids: list[str]) -> dict:
    result = await query_metering(
        nc, subjects,
        "SELECT count() AS rows, uniqExact(request_id) AS ids FROM usage WHERE request_id IN {ids:Array(String)}",
        {"ids": request_ids}, timeout=5,
    )  # fmt: skip
    assert result.error is None, result.error
    return dict(zip(result.columns, result.rows[0], strict=True))


async def applied_up_to(kv, key: str, seq: int) -> bool:
    """The ledger has applied the usage messages up to stream sequence `seq`."""
    _, led = await read_ledger(kv, key)
    return led is not None and led.applied_seq >= seq


def running_sum(costs: list[float]) -> float:
    total = 0.0
    for c in costs:
        total += c
    return total


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture
async def js(nc, bus_prefix):
    """JetStream with this test's usage stream declared (the module's `nc`: tests/integration/conftest.py)."""
    js = nc.jetstream()
    await ensure_usage_stream(js, Subjects(bus_prefix), RETENTION)
    return js


@pytest.fixture
async def kv(js, bus_prefix):
    return await open_bucket(js, Subjects(bus_prefix).budgets_bucket)


@pytest.fixture
async def metering(nats_server, bus_prefix, tmp_path, nc):
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


async def ready(nc, m: Metering) -> None:
    async def answers() -> bool:
        return (await query_metering(nc, m.subjects, "SELECT 1", timeout=2)).rows == [[1]]

    await eventually(answers, "metering's query service")


# ----------------------------------------------------------------------------------------- tests


async def test_spend_sums_exactly_in_every_ledger(nc, js, kv, metering) -> None:
    token, user, team = "tok" + uuid.uuid4().hex[:8], "ann@example.com", "team-a"
    keys = {
        "key": ledger_key(LedgerKind.KEY, token),
        "user": ledger_key(LedgerKind.USER, user),
        "team": ledger_key(LedgerKind.TEAM, team),
        "keymodel": ledger_key(LedgerKind.KEY_MODEL, token, MODELS[0]),
    }
    events = []
    for i in range(150):
        model = MODELS[i % 3]
        ledgers = {keys["key"]: LedgerRef(max_budget=100.0), keys["user"]: LedgerRef(), keys["team"]: LedgerRef()}
        if model == MODELS[0]:
            ledgers[keys["keymodel"]] = LedgerRef(max_budget=5.0)
        events.append(event(ledgers, cost=0.000137 * (i % 17) + 0.0000031 * i, model_group=model, key_hash=token))
    seqs = [await publish(js, metering.subjects, e) for e in events[:100]]
    metering.start()  # 100 waiting, 50 more while it runs: several batches of 40
    seqs += [await publish(js, metering.subjects, e) for e in events[100:]]
    await eventually(lambda: settled(js, metering.subjects), "every event settled")

    for name in ("key", "user", "team"):
        _, led = await read_ledger(kv, keys[name])
        assert led.spent == running_sum([e.cost for e in events]), name
        for model in MODELS:
            assert led.model_spend[model] == running_sum([e.cost for e in events if e.model_group == model]), name
        assert led.applied_seq == seqs[-1] and led.reservations == {} and led.period == 0
    _, keymodel = await read_ledger(kv, keys["keymodel"])
    assert keymodel.spent == running_sum([e.cost for e in events if e.model_group == MODELS[0]])
    assert keymodel.applied_seq == max(s for s, e in zip(seqs, events, strict=True) if e.model_group == MODELS[0])
    assert await row_counts(nc, metering.subjects, [e.request_id for e in events]) == {"rows": 150, "ids": 150}


async def test_a_request_published_again_or_redelivered_counts_once(nc, js, kv, metering) -> None:
    key = ledger_key(LedgerKind.KEY, "tok" + uuid.uuid4().hex[:8])
    refs = {key: LedgerRef(max_budget=10.0)}
    first = event(refs, cost=0.25)
    other = event(refs, cost=0.125)
    metering.start()
    await ready(nc, metering)

    await publish(js, metering.subjects, first)
    await publish(js, metering.subjects, first)  # the same Nats-Msg-Id: JetStream keeps one
    await publish(js, metering.subjects, first, msg_id=False)  # stored again: a second message
    await publish(js, metering.subjects, other)
    await eventually(lambda: settled(js, metering.subjects), "the first batch settled")
    # The same request once more, as a worker that retried later would send it (another attempt).
    again = msgspec.structs.replace(first, attempt=2, cost=0.5, worker_id="w2")
    await publish(js, metering.subjects, again, msg_id=False)
    await eventually(lambda: settled(js, metering.subjects), "the copy settled")

    revision, led = await read_ledger(kv, key)
    assert led.spent == 0.25 + 0.125
    assert await row_counts(nc, metering.subjects, [first.request_id, other.request_id]) == {"rows": 2, "ids": 2}

    # Every message once more (the consumer deleted): neither the rows nor the ledger change.
    assert metering.stop() == 0, metering.log()
    await js.delete_consumer(metering.subjects.usage_stream, metering.subjects.metering_consumer)
    metering.start()
    await eventually(lambda: settled(js, metering.subjects), "the full redelivery settled")
    assert await read_ledger(kv, key) == (revision, led)  # not even rewritten
    assert await row_counts(nc, metering.subjects, [first.request_id, other.request_id]) == {"rows": 2, "ids": 2}


async def test_crashes_mid_way_neither_lose_nor_double(nc, js, kv, metering) -> None:
    # An ack wait longer than a restart: newer events reach the next process before the crashed
    # batch is redelivered (the order metering must not settle in).
    metering.env["LLMGW_METERING_ACK_WAIT"] = "8"
    token = "tok" + uuid.uuid4().hex[:8]
    keys = [ledger_key(LedgerKind.KEY, token), ledger_key(LedgerKind.TEAM, "crash-team")]
    refs = {k: LedgerRef() for k in keys}
    events = [event(refs, cost=0.001 * (i % 7) + 0.0001, key_hash=token) for i in range(1500)]
    for e in events[:600]:
        await publish(js, metering.subjects, e)
    published = 600
    for crash, (delay, how) in enumerate(((0.0, "kill"), (0.03, "stop"), (0.11, "kill"))):
        metering.start()
        _, before = await read_ledger(kv, keys[0])
        floor = before.applied_seq if before else 0
        await eventually(partial(applied_up_to, kv, keys[0], floor + 80), f"batches settled before stop {crash}")
        await asyncio.sleep(delay)  # how far into the next batches the stop comes: the behaviour under test
        if how == "kill":
            metering.proc.kill()  # SIGKILL: the batch in flight stays unacked, maybe half done
        else:
            assert metering.stop() == 0, metering.log()  # SIGTERM: the held batch is finished first
        info = await js.consumer_info(metering.subjects.usage_stream, metering.subjects.metering_consumer)
        assert info.ack_floor.stream_seq < published  # killed mid-way
        for e in events[published : published + 300]:
            await publish(js, metering.subjects, e)
        published += 300
    metering.start()
    await eventually(lambda: settled(js, metering.subjects), "everything settled after the restarts", timeout=60)

    for key in keys:
        _, led = await read_ledger(kv, key)
        assert led.spent == running_sum([e.cost for e in events]), key
    assert await row_counts(nc, metering.subjects, [e.request_id for e in events]) == {"rows": 1500, "ids": 1500}


async def test_settling_releases_reservations_and_prunes_expired_ones(js, kv, metering) -> None:
    key = ledger_key(LedgerKind.KEY, "tok" + uuid.uuid4().hex[:8])
    done = event({key: LedgerRef(max_budget=1.0)}, cost=0.3)
    failed = event({key: LedgerRef(max_budget=1.0)}, cost=0.0, status="upstream_error", http_status=502)
    now = time.time()
    held = BudgetLedger(
        spent=0.0,
        reservations={
            done.request_id: Reservation(0.5, now + 600),
            failed.request_id: Reservation(0.5, now + 600),
            "lost-request": Reservation(0.4, now - 1),  # its request never came back: expired
            "in-flight": Reservation(0.2, now + 600),
        },
    )
    await kv.create(key, msgspec.json.encode(held))
    metering.start()
    await publish(js, metering.subjects, done)
    await publish(js, metering.subjects, failed)
    await eventually(lambda: settled(js, metering.subjects), "both settled")

    _, led = await read_ledger(kv, key)
    assert led.spent == 0.3
    assert led.reservations == {"in-flight": Reservation(0.2, now + 600)}


async def test_a_new_period_starts_from_zero_and_an_old_event_only_releases(js, kv, metering) -> None:
    key = ledger_key(LedgerKind.USER, "period-user")
    old = [event({key: LedgerRef(period=3)}, cost=c) for c in (0.5, 0.25)]
    new = event({key: LedgerRef(period=4)}, cost=0.125, model_group="claude-3")
    late = event({key: LedgerRef(period=3)}, cost=0.75)  # a long request of the last period
    metering.start()
    for e in old:
        await publish(js, metering.subjects, e)
    await eventually(lambda: settled(js, metering.subjects), "period 3 settled")
    _, led = await read_ledger(kv, key)
    assert (led.period, led.spent, led.model_spend) == (3, 0.75, {"gpt-4": 0.75})

    revision, led = await read_ledger(kv, key)
    await kv.update(
        key,
        msgspec.json.encode(msgspec.structs.replace(led, reservations={late.request_id: Reservation(1.0, time.time() + 600)})),
        last=revision,
    )  # what an edge does when it reserves
    await publish(js, metering.subjects, new)
    await publish(js, metering.subjects, late)
    await eventually(lambda: settled(js, metering.subjects), "period 4 settled")
    _, led = await read_ledger(kv, key)
    assert (led.period, led.spent, led.model_spend, led.reservations) == (4, 0.125, {"claude-3": 0.125}, {})


async def test_a_soft_budget_alerts_once_per_period(nc, js, kv, metering) -> None:
    subjects = metering.subjects
    token = "tok" + uuid.uuid4().hex[:8]
    key, user = ledger_key(LedgerKind.KEY, token), ledger_key(LedgerKind.USER, "bob@example.com")
    alerts: list[tuple[str, BudgetAlert]] = []

    async def on_alert(msg) -> None:
        alerts.append((msg.subject, _alert.decode(msg.data)))

    await nc.subscribe(subjects.alerts_wildcard, cb=on_alert)

    def refs(period: int) -> dict[str, LedgerRef]:
        return {key: LedgerRef(period=period, max_budget=1.0, soft_budget=0.05), user: LedgerRef(period=period)}

    metering.start()
    for period in (0, 1):
        for _ in range(3):  # 0.02 each: 0.06 crosses 0.05 on the third
            await publish(js, subjects, event(refs(period), cost=0.02, key_hash=token))
            await eventually(lambda: settled(js, subjects), "one event settled")
        for _ in range(3):  # past the soft budget: no second alert in the period
            await publish(js, subjects, event(refs(period), cost=0.02, key_hash=token))
        await eventually(lambda: settled(js, subjects), f"period {period} settled")

    await asyncio.sleep(0.3)  # a quiet window, not a wait: a second alert would arrive within it
    assert [s for s, _ in alerts] == [subjects.budget_alert("key")] * 2
    assert [(a.kind, a.id, a.period, a.soft_budget, a.max_budget) for _, a in alerts] == [
        ("key", token, 0, 0.05, 1.0),
        ("key", token, 1, 0.05, 1.0),
    ]
    assert all(a.spent >= 0.05 for _, a in alerts)
    _, led = await read_ledger(kv, key)
    assert (led.soft_alerted_period, led.period) == (1, 1)
    stored = await js.stream_info(subjects.alerts_stream)
    assert stored.state.messages == 2

    # Every usage event once more: no alert again.
    assert metering.stop() == 0, metering.log()
    await js.delete_consumer(subjects.usage_stream, subjects.metering_consumer)
    metering.start()
    await eventually(lambda: settled(js, subjects), "the redelivery settled")
    await asyncio.sleep(0.3)  # a quiet window, as above: no alert may arrive in it
    assert len(alerts) == 2 and (await js.stream_info(subjects.alerts_stream)).state.messages == 2


async def test_while_kv_refuses_writes_the_batch_is_held_not_acked(nc, js, kv, metering) -> None:
    key = ledger_key(LedgerKind.TEAM, "kv-outage")
    events = [event({key: LedgerRef()}, cost=0.01 * (i + 1)) for i in range(10)]
    metering.start()
    await ready(nc, metering)  # it has opened the bucket

    stream = f"KV_{metering.subjects.budgets_bucket}"
    config = (await js.stream_info(stream)).config
    await js.update_stream(replace(config, max_msg_size=16))  # every ledger write is refused now
    for e in events:
        await publish(js, metering.subjects, e)

    async def held() -> bool:
        info = await js.consumer_info(metering.subjects.usage_stream, metering.subjects.metering_consumer)
        return info.num_ack_pending == 10

    await eventually(held, "metering to hold the batch")
    await eventually(lambda: metering.log().count('"usage_insert_failed"') >= 3, "a few failed attempts")
    info = await js.consumer_info(metering.subjects.usage_stream, metering.subjects.metering_consumer)
    assert (info.num_ack_pending, info.num_redelivered) == (10, 0)  # held, kept from redelivery
    assert await read_ledger(kv, key) == (0, None)
    assert '"usage_insert_failed"' in metering.log()

    await js.update_stream(replace(config, max_msg_size=-1))
    await eventually(lambda: settled(js, metering.subjects), "the held batch settled", timeout=30)
    _, led = await read_ledger(kv, key)
    assert led.spent == running_sum([e.cost for e in events])
    assert await row_counts(nc, metering.subjects, [e.request_id for e in events]) == {"rows": 10, "ids": 10}
