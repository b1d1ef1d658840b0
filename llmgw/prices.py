"""What requests cost: the shipped price table (llmgw/prices.json, never fetched), with
per-deployment overrides from the config (`input_cost_per_token`, `output_cost_per_token`, and
LiteLLM's unit prices: `output_cost_per_image`, `input_cost_per_second`, `input_cost_per_character`,
`input_cost_per_query`, `input_cost_per_request`).

The table has one section per provider, each with the public price page it was taken from and
the date (`source`, `as_of`); a section may price its models as other sections do (`prices_of`:
Azure OpenAI as OpenAI) or say why it lists none (`unpriced`: self-hosted servers). A model is
looked up in its deployment's provider section first, then in the sections it prices as, then in
the whole table. A dated snapshot (`gpt-4o-2024-08-06`, `claude-sonnet-4@20250514`) is priced as
the longest entry it starts with; a path (`accounts/fireworks/models/`) and a Bedrock
cross-region prefix (`us.`, `eu.`, `global.`) are ignored.

Tokens are priced per token, cache reads (`cached_input`) and writes (`cache_write`) at their own
rates, a long prompt at its tier's rates (`above`: every token of a request whose prompt has more
than `tokens` tokens); images per image (by size and quality where the provider prices them so),
audio per second, speech per character, rerank per search unit, and some operations per request.
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


# Bedrock's cross-region inference profiles name a model with a geography in front of its id.
BEDROCK_GEOGRAPHIES = ("us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.", "global.")


class Tier(msgspec.Struct, frozen=True):
    """The rates of every token of a request whose prompt has more than `above` tokens."""

    above: int
    input: float  # USD per token
    output: float
    cached_input: float
    cache_write: float


class Price(msgspec.Struct, frozen=True):
    input: float  # USD per token
    output: float
    cached_input: float
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    cache_write: float | None = None  # USD per token written to the prompt cache (None: as input)
    tiers: tuple[Tier, ...] = ()  # long-prompt rates, lowest threshold first
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


def _tier(p: dict[str, Any]) -> Tier:
    return Tier(
        above=int(p["tokens"]),
        input=p["input"] / PER_MILLION,
        output=p["output"] / PER_MILLION,
        cached_input=p.get("cached_input", p["input"]) / PER_MILLION,
        cache_write=p.get("cache_write", p["input"]) / PER_MILLION,
    )


def _entry(p: dict[str, Any]) -> Price:
    return Price(
        input=p.get("input", 0.0) / PER_MILLION,
        output=p.get("output", 0.0) / PER_MILLION,
        cached_input=p.get("cached_input", p.get("input", 0.0)) / PER_MILLION,
        max_output_tokens=p.get("max_output_tokens", DEFAULT_MAX_OUTPUT_TOKENS),
        cache_write=p["cache_write"] / PER_MILLION if "cache_write" in p else None,
        tiers=tuple(sorted((_tier(t) for t in p.get("above", ())), key=lambda t: t.above)),
        image={str(k): float(v) for k, v in p.get("image", {}).items()},
        audio_second=p["audio_minute"] / 60.0 if "audio_minute" in p else None,
        character=p["characters_1m"] / PER_MILLION if "characters_1m" in p else None,
        search_unit=p["search_units_1k"] / 1000.0 if "search_units_1k" in p else None,
        request=p.get("request"),
    )


class PriceTable(msgspec.Struct, frozen=True):
    version: str
    sections: dict[str, dict[str, Price]]  # provider -> model -> price
    prices_of: dict[str, tuple[str, ...]]  # provider -> the sections its models are priced as
    models: dict[str, Price]  # every model, the first section that lists it winning


@lru_cache(maxsize=1)
def load_table() -> PriceTable:
    raw = json.loads(files("llmgw").joinpath("prices.json").read_text())
    sections: dict[str, dict[str, Price]] = {}
    prices_of: dict[str, tuple[str, ...]] = {}
    models: dict[str, Price] = {}
    for provider, section in raw["providers"].items():
        sections[provider] = {name: _entry(p) for name, p in section.get("models", {}).items()}
        prices_of[provider] = tuple(section.get("prices_of", ()))
        for name, price in sections[provider].items():
            models.setdefault(name, price)
    return PriceTable(raw["version"], sections, prices_of, models)


def price_table() -> tuple[str, dict[str, Price]]:
    """(the table's version, every model it prices)."""
    table = load_table()
    return table.version, table.models


def _match(models: dict[str, Price], name: str) -> Price | None:
    if name in models:
        return models[name]
    best = max((k for k in models if name.startswith((k + "-", k + "@", k + ":"))), key=len, default=None)
    return models[best] if best else None


@lru_cache(maxsize=4096)
def table_price(model: str, provider: str | None = None) -> Price | None:
    """The table's price of `model`: its provider's section first, then the sections that
    provider's models are priced as, then any section."""
    table = load_table()
    name = model.rsplit("/", 1)[-1]
    names = [name] + [name[len(g) :] for g in BEDROCK_GEOGRAPHIES if name.startswith(g)]
    chain = [provider, *table.prices_of.get(provider, ())] if provider else []
    for models in [*(table.sections.get(p, {}) for p in chain), table.models]:
        for candidate in names:
            if (found := _match(models, candidate)) is not None:
                return found
    return None


def price_for(deployment: Deployment, upstream_model: str) -> Price | None:
    """The deployment's own prices where the config gives them, else the table's; None if unknown."""
    listed = table_price(upstream_model, deployment.provider)
    units = dict(deployment.unit_prices)
    if deployment.input_cost_per_token is None and deployment.output_cost_per_token is None and not units:
        return listed
    base = listed or Price(input=0.0, output=0.0, cached_input=0.0)
    if deployment.input_cost_per_token is not None or deployment.output_cost_per_token is not None:
        input_cost = deployment.input_cost_per_token or 0.0
        base = msgspec.structs.replace(
            base,
            input=input_cost,
            output=deployment.output_cost_per_token or 0.0,
            cached_input=input_cost,
            cache_write=None,
            tiers=(),
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


def cost(price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, cache_write_tokens: int = 0) -> float:
    """USD for a request's tokens; `cached_tokens` (read from the prompt cache) and
    `cache_write_tokens` (written to it) are part of `prompt_tokens`."""
    rates: Price | Tier = price
    for tier in price.tiers:
        if prompt_tokens > tier.above:
            rates = tier
    cached = min(cached_tokens, prompt_tokens)
    written = min(cache_write_tokens, prompt_tokens - cached)
    write_rate = rates.input if rates.cache_write is None else rates.cache_write
    return (
        (prompt_tokens - cached - written) * rates.input
        + cached * rates.cached_input
        + written * write_rate
        + completion_tokens * rates.output
    )


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


# What a provider's own batch API charges, as a share of its normal price (prices.json has no batch
# prices): OpenAI's Batch API and Anthropic's Message Batches both bill 50% of the standard rates.
BATCH_PRICE_FACTOR: dict[str, float] = {"openai": 0.5, "anthropic": 0.5}


def batch_price_factor(provider: str) -> float:
    """The share of the normal price a batch handed to `provider`'s own batch API costs."""
    return BATCH_PRICE_FACTOR.get(provider, 1.0)
