"""A request that does not fit only because of requests in flight waits for them (real nats-server).

Each "edge" is a BudgetGuard on its own NATS connection, as separate edge processes have. The model
costs $1e-6 a prompt token and $1e-5 a completion token; a request of 100 prompt bytes and
`max_tokens` 50 has a worst case of 100 x 1e-6 + 50 x 1e-5 = $0.0006. Requests here cannot be
capped (`capped=False`): each must fit whole.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import nats
import pytest

from gateway.auth import Principal
from gateway.budgets import BudgetGuard, WorstCase
from gateway.errors import GatewayError
from llmgw.config import Deployment
from llmgw.contracts import BudgetLedger, Caller, ErrorCode, KeyRecord, LedgerKind, Reservation, Subjects, ledger_key
from llmgw.kv import open_bucket
from tests.waiting import eventually

pytestmark = pytest.mark.integration

DEPLOYMENT = Deployment(
    id="d/0",
    model_name="m",
    provider="openai",
    upstream_model="waiting-model",
    input_cost_per_token=1e-6,  # type: ignore[arg-type]
    output_cost_per_token=1e-5,  # type: ignore[arg-type]
)
WORST = WorstCase(100, max_tokens=50, capped=False)
COST = 100 * 1e-6 + 50 * 1e-5


class Edge:
    def __init__(self, nc, guard: BudgetGuard) -> None:
        self.nc, self.guard = nc, guard

    @classmethod
    async def start(cls, url: str, prefix: str, wait_seconds: float) -> Edge:
        nc = await nats.connect(url)
        guard = BudgetGuard(Subjects(prefix), wait_seconds=wait_seconds)
        await guard.start(nc.jetstream())
        return cls(nc, guard)

    async def admit(self, principal: Principal, request_id: str, deadline: float | None = None, worst: WorstCase = WORST):
        deadline = time.time() + 30 if deadline is None else deadline
        return await self.guard.admit(principal, "m", DEPLOYMENT, "waiting-model", worst, request_id, deadline)

    async def stop(self) -> None:
        await self.guard.stop()
        await self.nc.close()


@pytest.fixture
async def edges(nats_server, bus_prefix, request: pytest.FixtureRequest):
    wait_seconds = getattr(request, "param", 20.0)
    started = [await Edge.start(nats_server.url, bus_prefix, wait_seconds) for _ in range(2)]
    yield started
    for edge in started:
        await edge.stop()


def principal(max_budget: float) -> Principal:
    token = uuid.uuid4().hex
    key = KeyRecord(token=token, key_name="sk-...wait", max_budget=max_budget)
    return Principal(caller=Caller(key_hash=token), role="internal_user", key=key)


def ledger_of(who: Principal) -> str:
    assert who.key is not None
    return ledger_key(LedgerKind.KEY, who.key.token)


async def write_ledger(nc, prefix: str, key: str, ledger: BudgetLedger) -> None:
    kv = await open_bucket(nc.jetstream(), Subjects(prefix).budgets_bucket)
    await kv.put(key, msgspec.json.encode(ledger))


async def test_a_request_crowded_out_by_one_in_flight_is_admitted_once_it_settles(edges) -> None:
    one, two = edges
    who = principal(1.5 * COST)  # room for one worst case, and for a second once the first costs less
    refs, reserved, _ = await one.admit(who, "first")
    second = asyncio.create_task(two.admit(who, "second"))
    await eventually(lambda: two.guard.waiting == 1 or second.done(), "the second request to wait")
    assert not second.done()
    # The first request's last reply is in: it cost a fifth of its worst case.
    await one.guard.settle("first", reserved, refs, COST / 5)
    _, reserved_second, _ = await asyncio.wait_for(second, 10)
    assert reserved_second == [ledger_of(who)]

    def both_held() -> BudgetLedger | None:
        led = two.guard.ledgers.items.get(ledger_of(who))
        return led if led is not None and "second" in led.reservations else None

    ledger = await eventually(both_held, "the second reservation")
    assert ledger.reservations["first"] == Reservation(COST / 5, ledger.reservations["first"].expires_at, final=True)
    assert ledger.reservations["second"].amount == pytest.approx(COST)
    assert sum(r.amount for r in ledger.reservations.values()) <= 1.5 * COST


async def test_a_request_that_would_be_cut_waits_for_room_for_its_whole_answer(edges) -> None:
    one, two = edges
    who = principal(1.5 * COST)
    cappable = WorstCase(100, max_tokens=50)  # (a chat call: the worker can hold it to a cost cap)
    refs, reserved, _ = await one.admit(who, "first", worst=cappable)
    second = asyncio.create_task(two.admit(who, "second", worst=cappable))
    await eventually(lambda: two.guard.waiting == 1 or second.done(), "the second request to wait")
    assert not second.done()  # (half a worst case is free: it could start now, to be cut short)
    await one.guard.settle("first", reserved, refs, COST / 5)
    _, _, cap = await asyncio.wait_for(second, 10)
    assert cap is None  # its whole worst case is held: nothing cuts its answer


@pytest.mark.parametrize("edges", [0.5], indirect=True)
async def test_after_the_wait_a_request_takes_what_is_left(edges) -> None:
    one, two = edges
    who = principal(1.5 * COST)
    cappable = WorstCase(100, max_tokens=50)
    await one.admit(who, "first", worst=cappable)
    _, _, cap = await two.admit(who, "second", worst=cappable)
    assert cap == pytest.approx(COST / 2)  # the room left, which its worker holds it to


@pytest.mark.parametrize("edges", [0.5], indirect=True)
async def test_the_wait_is_bounded_by_the_setting(edges) -> None:
    one, two = edges
    who = principal(1.5 * COST)
    await one.admit(who, "holder")
    started = time.monotonic()
    with pytest.raises(GatewayError) as refused:
        await two.admit(who, "waiter")
    waited = time.monotonic() - started
    assert (refused.value.status, refused.value.code) == (429, ErrorCode.BUDGET_EXCEEDED)
    assert "held by requests in flight" in refused.value.message
    assert waited >= 0.45, waited  # it did wait...
    assert waited < 10, waited  # ... and gave up


async def test_the_wait_never_passes_the_request_deadline(edges) -> None:
    one, two = edges  # they would wait 20 s
    who = principal(1.5 * COST)
    await one.admit(who, "holder")
    started = time.monotonic()
    with pytest.raises(GatewayError) as refused:
        await two.admit(who, "waiter", deadline=time.time() + 0.5)
    assert refused.value.code == ErrorCode.BUDGET_EXCEEDED
    assert 0.45 <= time.monotonic() - started < 10


async def test_a_request_that_could_never_fit_is_refused_at_once(edges, nats_client, bus_prefix) -> None:
    one, two = edges  # they would wait 20 s
    who = principal(1.5 * COST)
    # Spent already leaves less than a worst case, whatever the request in flight costs.
    held = Reservation(COST / 10, time.time() + 600)
    await write_ledger(nats_client, bus_prefix, ledger_of(who), BudgetLedger(spent=0.8 * COST, reservations={"r": held}))
    await eventually(lambda: ledger_of(who) in two.guard.ledgers.items, "the ledger on the edge")
    started = time.monotonic()
    with pytest.raises(GatewayError) as refused:
        await two.admit(who, "never")
    assert refused.value.code == ErrorCode.BUDGET_EXCEEDED and two.guard.waiting == 0
    assert time.monotonic() - started < 5

    # Nor does one wait for reservations already settled to their cost: they will not shrink.
    other = principal(1.5 * COST)
    refs, reserved, _ = await one.admit(other, "done-soon")
    await one.guard.settle("done-soon", reserved, refs, COST)
    await eventually(
        lambda: (
            (led := two.guard.ledgers.items.get(ledger_of(other))) is not None
            and led.reservations.get("done-soon", Reservation(0, 0)).final
        ),
        "the settled reservation on the other edge",
    )
    started = time.monotonic()
    with pytest.raises(GatewayError):
        await two.admit(other, "never-either")
    assert time.monotonic() - started < 5


async def test_a_reservation_of_a_lost_request_frees_its_room_when_it_expires(edges, nats_client, bus_prefix) -> None:
    _, two = edges
    who = principal(1.5 * COST)
    lost = Reservation(COST, time.time() + 1.0)  # its edge died: nothing will settle it
    await write_ledger(nats_client, bus_prefix, ledger_of(who), BudgetLedger(reservations={"lost": lost}))
    await eventually(lambda: ledger_of(who) in two.guard.ledgers.items, "the ledger on the edge")
    _, reserved, _ = await two.admit(who, "after-the-lost-one")  # (no write wakes it: the expiry does)
    assert reserved == [ledger_of(who)]
