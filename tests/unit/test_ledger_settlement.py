"""The settlement rule of metering/ledgers.py on its own (no bus, no store)."""

from __future__ import annotations

import pytest

from llmgw.contracts import BudgetLedger, LedgerKind, LedgerRef, Reservation, UsageEvent, ledger_key
from metering.ledgers import LedgerItem, apply_items, ledger_items, parse_ledger_key

pytestmark = pytest.mark.unit

NOW = 1_000_000.0
KEY = ledger_key(LedgerKind.KEY, "tok1")


def item(
    seq: int,
    cost: float,
    period: int = 0,
    counts: bool = True,
    rid: str | None = None,
    soft: float | None = None,
    model: str = "gpt-4",
) -> LedgerItem:
    return LedgerItem(seq, rid or f"r{seq}", cost, model, LedgerRef(period=period, soft_budget=soft), counts)


@pytest.mark.parametrize(
    ("kind", "ident", "model"),
    [("key", "abc123", None), ("user", "ann@example.com", None), ("team", "team/α", None), ("keymodel", "tok", "gpt-4o")],
)
def test_ledger_keys_parse_back(kind, ident, model) -> None:
    assert parse_ledger_key(ledger_key(kind, ident, model)) == (kind, ident, model)


def test_items_at_or_below_applied_seq_change_nothing() -> None:
    ledger = BudgetLedger(spent=1.0, applied_seq=10)
    assert apply_items(ledger, [item(9, 5.0), item(10, 5.0)], NOW, KEY) == (None, None)


def test_a_copy_that_does_not_count_only_releases() -> None:
    ledger = BudgetLedger(reservations={"r5": Reservation(2.0, NOW + 60)})
    updated, _ = apply_items(ledger, [item(5, 3.0, counts=False)], NOW, KEY)
    assert (updated.spent, updated.reservations, updated.applied_seq) == (0.0, {}, 5)


def test_periods_reset_forward_and_old_events_only_release() -> None:
    ledger = BudgetLedger(spent=4.0, period=2, model_spend={"gpt-4": 4.0}, reservations={"old": Reservation(1.0, NOW + 60)})
    updated, _ = apply_items(ledger, [item(3, 1.5, period=3, model="m"), item(4, 9.0, period=2, rid="old")], NOW, KEY)
    assert (updated.period, updated.spent, updated.model_spend, updated.reservations) == (3, 1.5, {"m": 1.5}, {})


def test_expired_reservations_alone_are_pruned() -> None:
    ledger = BudgetLedger(applied_seq=7, reservations={"a": Reservation(1.0, NOW - 1), "b": Reservation(1.0, NOW + 1)})
    updated, _ = apply_items(ledger, [item(7, 1.0)], NOW, KEY)
    assert updated.reservations == {"b": Reservation(1.0, NOW + 1)} and updated.applied_seq == 7


def test_a_soft_budget_alerts_once_per_period() -> None:
    updated, pending = apply_items(None, [item(1, 0.3, soft=0.5), item(2, 0.3, soft=0.5)], NOW, KEY)
    assert pending.alert.kind == "key" and pending.alert.id == "tok1" and pending.alert.spent == 0.6
    assert updated.soft_alerted_period == 0
    again, pending = apply_items(updated, [item(3, 0.3, soft=0.5)], NOW, KEY)
    assert pending is None and again.spent == pytest.approx(0.9)
    _, pending = apply_items(again, [item(4, 0.6, period=1, soft=0.5)], NOW, KEY)
    assert pending.alert.period == 1 and pending.msg_id.endswith(".1")


# A worker's message holds a batch of events: each is placed by (stream seq, index in its message).


def in_batch(seq: int, index: int, cost: float, counts: bool = True) -> LedgerItem:
    return LedgerItem(seq, f"r{seq}.{index}", cost, "gpt-4", LedgerRef(period=0), counts, index)


def test_every_event_of_one_message_is_settled_and_the_message_is_applied() -> None:
    reserved = {f"r8.{i}": Reservation(1.0, NOW + 60) for i in range(3)}
    updated, _ = apply_items(
        BudgetLedger(applied_seq=7, reservations=reserved), [in_batch(8, i, 0.25) for i in range(3)], NOW, KEY
    )
    assert (updated.spent, updated.model_spend, updated.reservations, updated.applied_seq) == (0.75, {"gpt-4": 0.75}, {}, 8)


def test_a_redelivered_batch_changes_nothing() -> None:
    once, _ = apply_items(None, [in_batch(8, 0, 0.5), in_batch(8, 1, 0.25)], NOW, KEY)
    assert apply_items(once, [in_batch(8, 0, 0.5), in_batch(8, 1, 0.25)], NOW, KEY) == (None, None)


def test_a_message_held_twice_in_one_batch_is_settled_once() -> None:
    items = [in_batch(8, 0, 0.5), in_batch(8, 0, 0.5), in_batch(8, 1, 0.25), in_batch(8, 1, 0.25, counts=False)]
    updated, _ = apply_items(None, items, NOW, KEY)
    assert (updated.spent, updated.applied_seq) == (0.75, 8)


def test_a_ledger_written_from_single_events_reads_the_same() -> None:
    # applied_seq 10 was written when every message held one event: message 10 is not applied
    # again, the batch of message 11 is applied whole.
    old = BudgetLedger(spent=1.0, applied_seq=10)
    updated, _ = apply_items(old, [item(10, 5.0), in_batch(11, 0, 0.5), in_batch(11, 1, 0.25)], NOW, KEY)
    assert (updated.spent, updated.applied_seq) == (1.75, 11)


def usage(request_id: str) -> UsageEvent:
    fields = dict(
        request_id=request_id, ts=NOW, key_hash="k", operation="chat", model_group="gpt-4", deployment_id="d",
        provider="openai", upstream_model="gpt-4o", latency_ms=1.0, status="success", http_status=200,
        usage_source="provider", stream=False, cost=0.1, ledgers={KEY: LedgerRef(period=0)},
    )  # fmt: skip
    return UsageEvent(**fields)


def test_ledger_items_order_by_sequence_then_index() -> None:
    places = ((9, 1), (8, 2), (9, 0), (8, 0), (8, 1))
    grouped = ledger_items([(seq, index, usage(f"r{seq}.{index}"), True) for seq, index in places])
    assert [(i.seq, i.index) for i in grouped[KEY]] == [(8, 0), (8, 1), (8, 2), (9, 0), (9, 1)]
    assert [i.request_id for i in grouped[KEY]] == ["r8.0", "r8.1", "r8.2", "r9.0", "r9.1"]
