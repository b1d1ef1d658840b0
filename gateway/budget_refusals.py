"""What a budgeted request is told when its budget cannot hold it, and `Crowded`: the refusal of a
request that would fit but for the reservations of requests in flight (the edge waits for those to
settle before it refuses, gateway/budgets.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.errors import GatewayError
from llmgw.config import Deployment
from llmgw.contracts import BudgetLedger, ErrorCode, ErrorType
from llmgw.money import decimal_text

if TYPE_CHECKING:
    from gateway.budgets import WorstCase

# The config fields that price each unit (`litellm_params` / `params` of a deployment).
UNIT_PRICE_FIELDS = {
    "images": "output_cost_per_image",
    "audio_seconds": "input_cost_per_second",
    "characters": "input_cost_per_character",
    "search_units": "input_cost_per_query",
}


def price_unknown(model: str, deployment: Deployment, upstream_model: str, worst: WorstCase) -> GatewayError:
    units = worst.units
    fields = ["input_cost_per_token", "output_cost_per_token"]
    if units is not None:
        fields += [field for name, field in UNIT_PRICE_FIELDS.items() if getattr(units, name)]
    return GatewayError(
        400,
        f"The model `{model}` (deployment {deployment.id}, upstream model `{upstream_model}`) has no known price, "
        "so a budget cannot hold its cost. Set its price in the model's `litellm_params` (or `params`): "
        f"{', '.join(f'`{f}`' for f in fields)}; or allow unpriced models at cost 0 with "
        "`general_settings.allow_unpriced_models: true` (or LLMGW_ALLOW_UNPRICED_MODELS=true).",
        ErrorType.INVALID_REQUEST,
        ErrorCode.MODEL_PRICE_UNKNOWN,
        "model",
    )


def usd(amount: float) -> str:
    """An amount of USD readable at any size, without an exponent: 1e-7 is `$0.0000001`, not
    `$0.000000` (12 decimals: a millionth of a cent still shows)."""
    text = decimal_text(amount, 12)
    return "-$" + text[1:] if text.startswith("-") else "$" + text


def budget_exceeded(label: str, limit: float, ledger: BudgetLedger, room: float, needed: float, worst: float) -> GatewayError:
    """429 naming the budget, its spend and what the request needs, which is its worst case."""
    in_flight = sum(r.amount for r in ledger.reservations.values())
    if needed < worst:
        need = (
            f"this request needs at least {usd(needed)} to start (its worst case is {usd(worst)}: its prompt and "
            "the completion length it allows at the model's price; its answer would be cut where the budget ends)"
        )
    else:
        need = (
            f"this request needs {usd(needed)}, its worst case (its prompt and the completion length it allows "
            "at the model's price; it is refused unless the whole of it fits)"
        )
    return GatewayError(
        429,
        f"Budget exceeded for {label}: max_budget {usd(limit)}, spend {usd(ledger.spent)}"
        + (f" + {usd(in_flight)} held by requests in flight" if in_flight > 0 else "")
        + f", {usd(max(room, 0.0))} left; {need}.",
        "budget_exceeded",
        ErrorCode.BUDGET_EXCEEDED,
    )


class Crowded(GatewayError):
    """The 429 `budget_exceeded` of a request that fits what its budget has not spent, but not beside
    the reservations of requests in flight that may still shrink: the edge waits for the ledger to
    change (one of them settling) before it refuses."""

    def __init__(self, refusal: GatewayError, key: str, wake_at: float) -> None:
        super().__init__(refusal.status, refusal.message, refusal.type, refusal.code, refusal.param, refusal.headers)
        self.key = key  # the ledger that has no room yet
        self.revision = 0  # its revision the request was refused at (set by the compare-and-set)
        self.wake_at = wake_at  # when the first of those reservations expires, if nothing ends before


def crowded(refusal: GatewayError, key: str, ledger: BudgetLedger, limit: float, least: float, room: float) -> GatewayError:
    """`refusal` as `Crowded` when the request would have more room (at least `least`) once the
    reservations that can still shrink (not yet settled to their request's cost, `final`) ended;
    else `refusal` as it is (waiting cannot help: it can never fit, or fits as well as it ever will)."""
    pending = [r for r in ledger.reservations.values() if not r.final]
    possible = limit - ledger.spent - sum(r.amount for r in ledger.reservations.values() if r.final)
    if pending and possible >= least and possible > room + 1e-12:
        return Crowded(refusal, key, min(r.expires_at for r in pending))
    return refusal
