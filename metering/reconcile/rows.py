"""The providers' records as rows of `provider_usage` and `provider_prices`.

The usage reports are hourly; the cost reports only daily. Each hour's cost is its tokens at the
prices the provider charged that day: a token type's daily cost over that day's tokens of the
type (summed over every key and project, the model's name without its snapshot date). An hour of
a day whose cost report has nothing for the model has no cost (None), not a cost of 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import date, datetime

from llmgw.prices import Price, table_price
from metering.reconcile.reports import CostRecord, UsageRecord

TOKEN_TYPES = ("input", "cached_input", "cache_write", "output")

PROVIDER_USAGE_COLUMNS = (
    "provider",
    "api_key_id",
    "project_id",
    "model",
    "reported_model",
    "hour",
    "ours",
    "requests",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "cost",
    "fetched_at",
)
PROVIDER_PRICES_COLUMNS = ("provider", "model", "token_type", "day", "tokens", "provider_cost", "llmgw_price", "fetched_at")


def tokens_by_type(record: UsageRecord) -> dict[str, int]:
    uncached = max(record.input_tokens - record.cached_tokens - record.cache_write_tokens, 0)
    return {
        "input": uncached,
        "cached_input": record.cached_tokens,
        "cache_write": record.cache_write_tokens,
        "output": record.output_tokens,
    }


def llmgw_rate(price: Price | None, token_type: str) -> float | None:
    """llmgw's price of one token of this type (USD), None if the table has no price."""
    if price is None:
        return None
    if token_type == "cache_write":
        return price.input if price.cache_write is None else price.cache_write
    return float(getattr(price, token_type))


def is_ours(record: UsageRecord, key_ids: Collection[str]) -> bool:
    """Billed on a provider key or project llmgw sends with (all are, when none is named)."""
    return not key_ids or record.api_key_id in key_ids or record.project_id in key_ids


def build_rows(
    usage: list[UsageRecord], costs: list[CostRecord], key_ids: Collection[str], fetched_at: datetime
) -> tuple[list[list[object]], list[list[object]]]:
    """(provider_usage rows, provider_prices rows) in their tables' column order."""
    day_tokens: dict[tuple[str, str, date, str], int] = defaultdict(int)
    for u in usage:
        for token_type, n in tokens_by_type(u).items():
            day_tokens[(u.provider, u.model, u.hour.date(), token_type)] += n
    day_cost: dict[tuple[str, str, date, str], float] = defaultdict(float)
    priced_days: set[tuple[str, str, date]] = set()
    for c in costs:
        if c.token_type == "other" or not c.model:
            continue
        day_cost[(c.provider, c.model, c.day, c.token_type)] += c.amount
        priced_days.add((c.provider, c.model, c.day))

    usage_rows: list[list[object]] = []
    for u in usage:
        cost: float | None = None
        if (u.provider, u.model, u.hour.date()) in priced_days:
            cost = 0.0
            for token_type, n in tokens_by_type(u).items():
                key = (u.provider, u.model, u.hour.date(), token_type)
                if n and day_tokens[key]:
                    cost += day_cost.get(key, 0.0) * n / day_tokens[key]
        usage_rows.append([
            u.provider, u.api_key_id, u.project_id, u.model, u.reported_model, u.hour.replace(tzinfo=None),
            is_ours(u, key_ids), u.requests, u.input_tokens, u.cached_tokens, u.cache_write_tokens, u.output_tokens,
            None if cost is None else round(cost, 9), fetched_at,
        ])  # fmt: skip

    price_rows: list[list[object]] = []
    for (provider, model, day, token_type), amount in sorted(day_cost.items()):
        tokens = day_tokens.get((provider, model, day, token_type), 0)
        rate = llmgw_rate(table_price(model, provider), token_type)
        price_rows.append([provider, model, token_type, day, tokens, round(amount, 9), rate, fetched_at])
    return usage_rows, price_rows
