"""Keeping a request within what its budgets could reserve (`cost_cap`).

The edge admits a request whose worst case does not fit the remaining budget with a cap instead
of refusing it. A whole answer is capped by lowering `max_tokens` so that it cannot cost more; a
stream is watched token by token and stopped, with a final error event, before it would.
"""

from __future__ import annotations

from typing import Any

import msgspec

from llmgw.prices import Price

_body_decoder = msgspec.json.Decoder(dict[str, Any])


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


def cap_max_tokens(body: bytes, allowance: int) -> bytes:
    """The body with `max_tokens` (and `max_completion_tokens`) at most `allowance`."""
    data = _body_decoder.decode(body)
    for name in ("max_tokens", "max_completion_tokens"):
        if isinstance(data.get(name), int):
            data[name] = min(data[name], allowance)
    if not isinstance(data.get("max_completion_tokens"), int):
        data["max_tokens"] = min(data.get("max_tokens") or allowance, allowance)
    return msgspec.json.encode(data)
