"""Budget objects bounding their holders, the gateway-wide budget read from the config, and the
amounts a budget refusal shows (readable at any size, never `0.000000`), and which refusals are
worth waiting out (requests in flight whose reservations may still shrink)."""

from __future__ import annotations

import pytest

from gateway.budget_objects import bounded, limits_of
from gateway.budget_refusals import Crowded, budget_exceeded, crowded, usd
from gateway.end_users import end_user_headers, end_user_id
from gateway.errors import GatewayError
from gateway.gateway_budget import gateway_limits
from llmgw.config import ConfigError
from llmgw.contracts import BudgetLedger, BudgetRecord, EndUserRecord, KeyRecord, Limits, Reservation

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(1e-7, "$0.0000001"), (0.0, "$0"), (1.0800000000000002e-05, "$0.0000108"), (12.5, "$12.5"), (3e-11, "$0.00000000003")],
)
def test_amounts_are_readable_at_any_size(amount: float, shown: str) -> None:
    assert usd(amount) == shown


def test_a_refusal_names_the_budget_its_spend_what_is_held_and_the_worst_case() -> None:
    ledger = BudgetLedger(spent=2e-7, reservations={"r": Reservation(1e-7, 2e9)})
    capped = budget_exceeded("key sk-...abcd", 4e-7, ledger, 1e-7, 3e-7, 9e-7)
    assert isinstance(capped, GatewayError) and (capped.status, capped.code) == (429, "budget_exceeded")
    assert capped.message.startswith(
        "Budget exceeded for key sk-...abcd: max_budget $0.0000004, spend $0.0000002 + $0.0000001 held by requests in flight,"
        " $0.0000001 left; this request needs at least $0.0000003 to start (its worst case is $0.0000009"
    ), capped.message
    whole = budget_exceeded("end user u", 1.0, BudgetLedger(spent=1.0), 0.0, 0.5, 0.5)
    assert "held by requests in flight" not in whole.message
    assert "$0 left; this request needs $0.5, its worst case" in whole.message, whole.message


def test_only_a_refusal_that_reservations_still_shrinking_cause_is_waited_out() -> None:
    refusal = budget_exceeded("key k", 1.0, BudgetLedger(), 0.0, 0.5, 0.5)
    in_flight = BudgetLedger(spent=0.2, reservations={"a": Reservation(0.6, 100.0), "b": Reservation(0.2, 50.0)})
    waited = crowded(refusal, "key.k", in_flight, 1.0, 0.5, 0.0)
    assert isinstance(waited, Crowded) and (waited.key, waited.wake_at, waited.status) == ("key.k", 50.0, 429)
    assert waited.message == refusal.message
    # Spent and settled reservations leave less than the request needs: it can never fit.
    settled = BudgetLedger(spent=0.2, reservations={"a": Reservation(0.6, 100.0, final=True), "b": Reservation(0.2, 50.0)})
    assert crowded(refusal, "key.k", settled, 1.0, 0.5, 0.0) is refusal
    # Nothing in flight can shrink: as good as it gets.
    assert (
        crowded(refusal, "key.k", BudgetLedger(spent=0.2, reservations={"a": Reservation(0.8, 9.0, final=True)}), 1.0, 0.5, 0.0)
        is refusal
    )
    # Room for a cut answer now, for more once the others settle: worth a wait; no more to come: not.
    assert isinstance(crowded(refusal, "key.k", in_flight, 1.0, 0.1, 0.2), Crowded)
    assert crowded(refusal, "key.k", in_flight, 1.0, 0.1, 0.8) is refusal


def test_a_budget_object_bounds_its_holder_with_the_limits_it_sets() -> None:
    key = KeyRecord(token="t", key_name="sk-...1", max_budget=50.0, rpm_limit=10, tpm_limit=1000, budget_id="tier")
    tier = BudgetRecord(budget_id="tier", max_budget=5.0, rpm_limit=2, budget_duration="30d")
    bound = bounded(key, tier)
    assert (bound.max_budget, bound.rpm_limit, bound.tpm_limit, bound.budget_duration) == (5.0, 2, 1000, "30d")
    assert bounded(key, None) is key
    assert bounded(EndUserRecord(user_id="u"), tier).rpm_limit == 2
    assert limits_of(tier) == Limits(max_budget=5.0, rpm_limit=2, budget_duration="30d")
    assert limits_of(None) is None


def test_the_gateway_wide_budget_is_read_from_litellm_settings() -> None:
    assert gateway_limits({}) is None
    assert gateway_limits({"max_budget": 0}) == Limits(max_budget=0.0)
    assert gateway_limits({"max_budget": 10, "budget_duration": "30d"}) == Limits(max_budget=10.0, budget_duration="30d")
    for bad in (
        {"max_budget": -1},
        {"max_budget": "lots"},
        {"max_budget": 1, "budget_duration": "soon"},
        {"budget_duration": "1d"},
    ):
        with pytest.raises(ConfigError):
            gateway_limits(bad)


def test_the_end_user_is_the_header_or_the_user_field() -> None:
    def scope(*headers: tuple[bytes, bytes]) -> dict:
        return {"headers": list(headers)}

    assert end_user_id(scope(), b'{"model": "m", "user": "cust-1"}') == "cust-1"
    assert end_user_id(scope((b"x-litellm-end-user-id", b"cust-2")), b'{"user": "cust-1"}') == "cust-2"
    assert end_user_id(scope(), b'{"model": "m"}') is None
    assert end_user_id(scope(), b'{"user": 5}') is None
    assert end_user_id(scope(), b'{"litellm_metadata": {"user": "cust-3"}}') == "cust-3"
    assert end_user_id(scope(), b'{"metadata": {"user_id": "cust-4"}, "messages": []}') == "cust-4"
    assert end_user_id(scope(), b'{"user": "cust-1", "metadata": {"user_id": "cust-4"}}') == "cust-1"
    assert end_user_id(scope(), b'{"metadata": "not an object", "user": "cust-1"}') == "cust-1"
    assert end_user_id(scope(), b"--boundary\r\nuser\r\n") is None  # an upload names no end user
    openwebui = end_user_headers({"user_header_name": "X-OpenWebUI-User-Id"})
    assert openwebui == (b"x-openwebui-user-id", b"x-litellm-end-user-id")
    assert end_user_id(scope((b"x-openwebui-user-id", b"ana")), b'{"user": "cust-1"}', openwebui) == "ana"
    assert end_user_id(scope((b"x-openwebui-user-id", b"ana")), b'{"user": "cust-1"}') == "cust-1"  # not configured
    with pytest.raises(ConfigError):
        end_user_headers({"user_header_name": ""})
    with pytest.raises(GatewayError) as long:
        end_user_id(scope(), b'{"user": "' + b"x" * 600 + b'"}')
    assert (long.value.status, long.value.param) == (400, "user")
