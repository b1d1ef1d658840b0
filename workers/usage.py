"""Token counts as the worker learns them, and what they cost."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog

from llmgw.config import Deployment
from llmgw.contracts import Units
from llmgw.prices import cost, price_for, units_cost

log = structlog.get_logger()


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens read from the provider's prompt cache (part of prompt_tokens)
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0  # prompt tokens written to the provider's prompt cache (part of prompt_tokens)
    units: Units | None = None  # what the request used besides tokens (images, audio seconds, ...)
    estimated: bool = False  # the adapter estimated the counts (the provider reports none)


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    """OpenAI's `usage` object for an answer the gateway writes in OpenAI's format; the details
    objects appear when they have something to say (as OpenAI-compatible servers do)."""
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def embeddings_usage_to_openai(prompt_tokens: int) -> dict[str, int]:
    """OpenAI's `usage` object of an embeddings list."""
    return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}


_unpriced_warned: set[str] = set()


def cost_of(usage: Usage, deployment: Deployment, upstream_model: str) -> tuple[float, bool]:
    """(cost in USD, whether a price was known): the deployment's prices, else the shipped table.
    An unknown price costs 0 and is flagged; the warning is logged once per model."""
    price = price_for(deployment, upstream_model)
    if price is None:
        if upstream_model not in _unpriced_warned:
            _unpriced_warned.add(upstream_model)
            log.warning("price_unknown", model=upstream_model, deployment=deployment.id)
        return 0.0, False
    tokens = cost(price, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.cache_write_tokens)
    units, known = units_cost(price, usage.units)
    return tokens + units, known


def estimate_tokens(text_chars: int) -> int:
    """A rough count (4 characters a token) for when the upstream did not say."""
    return (text_chars + 3) // 4


def estimated_usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    """Usage the gateway estimated (recorded with usage_source 'estimated')."""
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, estimated=True)
