"""Keeping a request within what its budgets could reserve (`cost_cap`).

The edge admits a request whose worst case does not fit the remaining budget with a cap instead
of refusing it. A whole answer is capped by lowering `max_tokens` so that it cannot cost more
(shared by the `n` answers it asks for); a stream's completion tokens are counted as they come and
the stream is stopped, with a final error event, before it would cost more.

A stream's count is the provider's own where it reports usage as it goes, otherwise the offline
tokenizer (llmgw.tokens) on the text of the deltas. The tokenizer is not run on every chunk: a
token is at least one byte, so the count so far plus the bytes of the text not yet counted is an
upper bound, and the text is counted (in one call) only when that bound would pass the allowance
or `COUNT_EVERY_BYTES` of it have gathered.
"""

from __future__ import annotations

import msgspec

from llmgw.config import Deployment
from llmgw.contracts import CAPPED_OPERATIONS, UpstreamRequest
from llmgw.prices import Price, price_for
from llmgw.tokens import count_tokens
from workers.providers.request_body import RequestBody

COUNT_EVERY_BYTES = 2048  # text gathered before the tokenizer counts it anyway


def completion_allowance(price: Price, cost_cap: float, prompt_bytes: int) -> int:
    """Completion tokens the cap still pays for once the prompt (at most one token a byte: an
    upper bound of its tokens, so the allowance is never more than the cap pays for) is paid."""
    left = cost_cap - prompt_bytes * price.input
    if price.output <= 0:
        return 1 << 30
    return max(int(left / price.output), 0)


def prompt_bytes_of(request: UpstreamRequest) -> int:
    """The bytes of a request's prompt as the upstream gets it: its body and the policy's system prompts."""
    return len(request.body) + sum(len(p.encode()) for p in request.system_prompts)


class _Function(msgspec.Struct):
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    function: _Function | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    text: str | None = None  # legacy completions


class _Usage(msgspec.Struct):
    completion_tokens: int | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    usage: _Usage | None = None


_chunk_decoder = msgspec.json.Decoder(_Chunk)


def chunk_text(chunk: _Chunk) -> str:
    """The text a chat or completions chunk adds: content, reasoning, refusals, tool arguments."""
    parts: list[str] = []
    for choice in chunk.choices:
        if choice.text:
            parts.append(choice.text)
        delta = choice.delta
        if delta is None:
            continue
        parts.extend(t for t in (delta.content, delta.reasoning_content, delta.refusal) if t)
        for call in delta.tool_calls or ():
            if call.function is not None and call.function.arguments:
                parts.append(call.function.arguments)
    return "".join(parts)


class StreamMeter:
    """Counts a stream's completion tokens against its allowance (see the module docstring)."""

    __slots__ = ("allowance", "counted", "model", "pending", "pending_bytes")

    def __init__(self, allowance: int, model: str) -> None:
        self.allowance = allowance
        self.model = model
        self.counted = 0  # tokens counted so far (tokenizer, or the provider's own count)
        self.pending: list[str] = []  # text not counted yet
        self.pending_bytes = 0

    @property
    def tokens(self) -> int:
        """An upper bound of the completion tokens streamed so far."""
        return self.counted + self.pending_bytes

    def _count(self) -> None:
        if self.pending:
            self.counted += count_tokens("".join(self.pending), self.model)
            self.pending.clear()
            self.pending_bytes = 0

    def take(self, chunk: bytes) -> bool:
        """Count a chunk about to be relayed; False (and the chunk not counted) when relaying it
        could pass the allowance."""
        try:
            parsed = _chunk_decoder.decode(chunk)
        except msgspec.DecodeError:
            return self.tokens <= self.allowance
        if parsed.usage is not None and parsed.usage.completion_tokens is not None:
            self.reported(parsed.usage.completion_tokens)
        text = chunk_text(parsed)
        if not text:
            return self.tokens <= self.allowance
        size = len(text.encode())
        if self.tokens + size <= self.allowance and self.pending_bytes + size < COUNT_EVERY_BYTES:
            self.pending.append(text)
            self.pending_bytes += size
            return True
        self._count()
        added = count_tokens(text, self.model)
        if self.counted + added > self.allowance:
            return False
        self.counted += added
        return True

    def reported(self, completion_tokens: int) -> None:
        """The provider's own count of the completion so far (it covers the text relayed before it)."""
        self._count()
        self.counted = max(self.counted, completion_tokens)

    def estimate(self) -> int:
        """The tokens streamed so far, counted (for a stream that broke off before its usage)."""
        self._count()
        return self.counted


def apply_cost_cap(
    request: UpstreamRequest, body: RequestBody, deployment: Deployment, upstream_model: str
) -> tuple[StreamMeter | None, RequestBody]:
    """Hold a capped request to its cap on `deployment`: a stream is metered (and stopped at the
    cap), a whole answer gets a completion limit it can afford, shared by its answers. An uncapped
    request, or one to a model without a price, is left as it is."""
    if request.cost_cap is None or request.operation not in CAPPED_OPERATIONS:
        return None, body
    price = price_for(deployment, upstream_model)
    if price is None:
        return None, body
    allowance = completion_allowance(price, request.cost_cap, prompt_bytes_of(request))
    if request.stream:
        return StreamMeter(allowance, upstream_model), body
    return None, body.with_completion_cap(max(allowance // max(request.answers, 1), 1))
