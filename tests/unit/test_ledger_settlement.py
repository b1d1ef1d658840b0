"""The settlement rule of metering/ledgers.py on its own (no bus, no store)."""

from __future__ import annotations

import pytest

from llmgw.contracts import BudgetLedger, LedgerKind, LedgerRef, Reservation, ledger_key
from metering.ledgers import LedgerItem, apply_items, parse_ledger_key

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
