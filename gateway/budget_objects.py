"""Budget objects (`/budget/new`, LiteLLM's budget table): one set of limits that many holders name.

A key, user, team or end user whose `budget_id` names a budget object is bound by that object's
limits (max_budget, soft_budget, budget_duration, rpm_limit, tpm_limit, max_parallel_requests,
model_max_budget) in place of its own, each limit the object sets replacing the holder's; each
holder keeps its own spend in its own ledger, so a budget object of $10 gives every key naming it
$10 (a tier), as LiteLLM's budgets do. A `budget_id` naming no object (deleted since) leaves the
holder's own limits.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from llmgw.contracts import BudgetRecord, Limits

H = TypeVar("H", bound=Limits)

# The fields of a budget object that bound its holders.
BOUNDING_FIELDS = ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests")


def bounding(budget: BudgetRecord) -> dict[str, object]:
    """The limits `budget` sets (those left unset do not replace a holder's own)."""
    out: dict[str, object] = {name: getattr(budget, name) for name in BOUNDING_FIELDS if getattr(budget, name) is not None}
    if budget.model_max_budget:
        out["model_max_budget"] = budget.model_max_budget
    return out


def bounded(holder: H, budget: BudgetRecord | None) -> H:
    """The holder with the limits of its budget object in place of its own."""
    if budget is None:
        return holder
    fields = bounding(budget)
    return msgspec.structs.replace(holder, **fields) if fields else holder


def limits_of(budget: BudgetRecord | None) -> Limits | None:
    """The Limits a budget object stands for (for holders kept elsewhere, such as organizations)."""
    if budget is None:
        return None
    return Limits(**{name: getattr(budget, name) for name in (*BOUNDING_FIELDS, "model_max_budget")})
