"""What requests cost: the shipped price table (llmgw/prices.json, never fetched), with
per-deployment overrides from the config (`input_cost_per_token`, `output_cost_per_token`, and
LiteLLM's unit prices: `output_cost_per_image`, `input_cost_per_second`, `input_cost_per_character`,
`input_cost_per_query`, `input_cost_per_request`).

A dated snapshot (`gpt-4o-2024-08-06`) is priced as the longest table entry it starts with; a
provider prefix (`openai/`) is ignored. Tokens are priced per token; images per image (by size
and quality where the provider prices them so), audio per second, speech per character, rerank
per search unit, and some operations per request.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

import msgspec

from llmgw.config import Deployment
from llmgw.contracts import Units

PER_MILLION = 1_000_000.0
DEFAULT_MAX_OUTPUT_TOKENS = 4096
ANY = "*"  # an image price for any size or quality not listed


class Price(msgspec.Struct, frozen=True):
    input: float  # USD per token
    output: float
    cached_input: float
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    image: dict[str, float] = {}  # USD per image by "<size>/<quality>", "<size>", "<quality>" or "*"
    audio_second: float | None = None  # USD per second of audio
    character: float | None = None  # USD per character (speech)
    search_unit: float | None = None  # USD per search unit (rerank)
    request: float | None = None  # USD per request

    def image_price(self, size: str | None, quality: str | None) -> float | None:
        for name in (f"{size}/{quality}", size, quality, ANY):
            if name is not None and name in self.image:
                return self.image[name]
        return None


def _entry(p: dict[str, Any]) -> Price:
    return Price(
        input=p.get("input", 0.0) / PER_MILLION,
        output=p.get("output", 0.0) / PER_MILLION,
        cached_input=p.get("cached_input", p.get("input", 0.0)) / PER_MILLION,
        max_output_tokens=p.get("max_output_tokens", DEFAULT_MAX_OUTPUT_TOKENS),
        image={str(k): float(v) for k, v in p.get("image", {}).items()},
        audio_second=p["audio_minute"] / 60.0 if "audio_minute" in p else None,
        character=p["characters_1m"] / PER_MILLION if "characters_1m" in p else None,
        search_unit=p["search_units_1k"] / 1000.0 if "search_units_1k" in p else None,
        request=p.get("request"),
    )


@lru_cache(maxsize=1)
def price_table() -> tuple[str, dict[str, Price]]:
    raw = json.loads(files("llmgw").joinpath("prices.json").read_text())
    return raw["version"], {name: _entry(p) for name, p in raw["models"].items()}


@lru_cache(maxsize=4096)
def table_price(model: str) -> Price | None:
    _, table = price_table()
    name = model.rsplit("/", 1)[-1]
    if name in table:
        return table[name]
    best = max((k for k in table if name.startswith((k + "-", k + "@"))), key=len, default=None)
    return table[best] if best else None


def price_for(deployment: Deployment, upstream_model: str) -> Price | None:
    """The deployment's own prices where the config gives them, else the table's; None if unknown."""
    listed = table_price(upstream_model)
    units = dict(deployment.unit_prices)
    if deployment.input_cost_per_token is None and deployment.output_cost_per_token is None and not units:
        return listed
    base = listed or Price(input=0.0, output=0.0, cached_input=0.0)
    if deployment.input_cost_per_token is not None or deployment.output_cost_per_token is not None:
        input_cost = deployment.input_cost_per_token or 0.0
        base = msgspec.structs.replace(
            base, input=input_cost, output=deployment.output_cost_per_token or 0.0, cached_input=input_cost
        )
    if "output_cost_per_image" in units:
        base = msgspec.structs.replace(base, image={ANY: units["output_cost_per_image"]})
    return msgspec.structs.replace(
        base,
        audio_second=units.get("input_cost_per_second", base.audio_second),
        character=units.get("input_cost_per_character", base.character),
        search_unit=units.get("input_cost_per_query", base.search_unit),
        request=units.get("input_cost_per_request", base.request),
    )


def cost(price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
    cached = min(cached_tokens, prompt_tokens)
    return (prompt_tokens - cached) * price.input + cached * price.cached_input + completion_tokens * price.output


def units_cost(price: Price, units: Units | None) -> tuple[float, bool]:
    """(USD for the units a request used, whether every unit it used has a price)."""
    total, known = price.request or 0.0, True
    if units is None:
        return total, known
    if units.images:
        each = price.image_price(units.image_size, units.image_quality)
        total, known = total + units.images * (each or 0.0), known and each is not None
    for used, each in (
        (units.audio_seconds, price.audio_second),
        (units.characters, price.character),
        (units.search_units, price.search_unit),
    ):
        if used:
            total, known = total + used * (each or 0.0), known and each is not None
    return total, known
