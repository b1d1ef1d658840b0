"""Keeping a request within what its budgets could reserve (`cost_cap`).

The edge admits a request whose worst case does not fit the remaining budget with a cap instead
of refusing it. A whole answer is capped by lowering `max_tokens` so that it cannot cost more; a
stream is watched token by token and stopped, with a final error event, before it would.
"""

from __future__ import annotations

from llmgw.config import Deployment
from llmgw.contracts import Operation, UpstreamRequest
from llmgw.prices import Price, price_for
from workers.providers.request_body import RequestBody

# Operations whose body has a completion length a cap can lower (`max_tokens`); the others'
# cost is fixed by what they ask (images, search units, the input), all of it in the worst case.
CAPPED_OPERATIONS = frozenset({Operation.CHAT, Operation.COMPLETIONS})


def completion_allowance(price: Price, cost_cap: float, prompt_bytes: int) -> int:
    """Completion tokens the cap still pays for once the prompt (at most one token a byte) is paid."""
    left = cost_cap - prompt_bytes * price.input
    if price.output <= 0:
        return 1 << 30
    return max(int(left / price.output), 0)


class StreamMeter:
    """Counts a stream's completion tokens (one per content chunk) against its allowance."""

    __slots__ = ("allowance", "tokens")

    def __init__(self, allowance: int) -> None:
        self.allowance = allowance
        self.tokens = 0

    def take(self) -> bool:
        """Count one more token; False once the allowance is used up."""
        self.tokens += 1
        return self.tokens <= self.allowance


def apply_cost_cap(
    request: UpstreamRequest, body: RequestBody, deployment: Deployment, upstream_model: str
) -> tuple[StreamMeter | None, RequestBody]:
    """Hold a capped request to its cap on `deployment`: a stream is metered (and stopped at the
    cap), a whole answer gets a completion limit it can afford. An uncapped request, or one to
    a model without a price, is left as it is."""
    if request.cost_cap is None or request.operation not in CAPPED_OPERATIONS:
        return None, body
    price = price_for(deployment, upstream_model)
    if price is None:
        return None, body
    allowance = completion_allowance(price, request.cost_cap, len(request.body))
    if request.stream:
        return StreamMeter(allowance), body
    return None, body.with_completion_cap(max(allowance, 1))
