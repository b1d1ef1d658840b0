"""What tokens cost: the shipped price table (llmgw/prices.json, never fetched), with per-deployment
overrides from the config (`input_cost_per_token`, `output_cost_per_token`).

A dated snapshot (`gpt-4o-2024-08-06`) is priced as the longest table entry it starts with; a
provider prefix (`openai/`) is ignored.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files

import msgspec

from llmgw.config import Deployment

PER_MILLION = 1_000_000.0
DEFAULT_MAX_OUTPUT_TOKENS = 4096


class Price(msgspec.Struct, frozen=True):
    input: float  # USD per token
    output: float
    cached_input: float
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS


@lru_cache(maxsize=1)
def price_table() -> tuple[str, dict[str, Price]]:
    raw = json.loads(files("llmgw").joinpath("prices.json").read_text())
    table = {
        name: Price(
            input=p["input"] / PER_MILLION,
            output=p["output"] / PER_MILLION,
            cached_input=p.get("cached_input", p["input"]) / PER_MILLION,
            max_output_tokens=p.get("max_output_tokens", DEFAULT_MAX_OUTPUT_TOKENS),
        )
        for name, p in raw["models"].items()
    }
    return raw["version"], table


@lru_cache(maxsize=4096)
def table_price(model: str) -> Price | None:
    _, table = price_table()
    name = model.rsplit("/", 1)[-1]
    if name in table:
        return table[name]
    best = max((k for k in table if name.startswith((k + "-", k + "@"))), key=len, default=None)
    return table[best] if best else None


def price_for(deployment: Deployment, upstream_model: str) -> Price | None:
    """The deployment's own prices if the config gives them, else the table's; None if unknown."""
    listed = table_price(upstream_model)
    if deployment.input_cost_per_token is None and deployment.output_cost_per_token is None:
        return listed
    input_cost = deployment.input_cost_per_token or 0.0
    return Price(
        input=input_cost,
        output=deployment.output_cost_per_token or 0.0,
        cached_input=input_cost,
        max_output_tokens=listed.max_output_tokens if listed else DEFAULT_MAX_OUTPUT_TOKENS,
    )


def cost(price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
    cached = min(cached_tokens, prompt_tokens)
    return (prompt_tokens - cached) * price.input + cached * price.cached_input + completion_tokens * price.output
