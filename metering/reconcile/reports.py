"""Reading the providers' own usage and cost reports, page after page, into plain records.

- OpenAI's organization Usage API (`GET /v1/organization/usage/completions` and `.../embeddings`,
  hourly buckets grouped by model, api_key_id and project_id) and Costs API
  (`GET /v1/organization/costs`, daily buckets grouped by line_item and project_id; a token line
  item is "<model>, input" / "<model>, cached input" / "<model>, output"), with an admin key
  (`Authorization: Bearer`). Pages: `page` = the previous answer's `next_page` while `has_more`.
- Anthropic's Admin API usage report (`GET /v1/organizations/usage_report/messages`, hourly,
  `group_by[]` model, api_key_id, workspace_id) and cost report
  (`GET /v1/organizations/cost_report`, daily, `group_by[]` description and workspace_id; amounts
  are decimal strings in cents), with an admin key (`x-api-key`, `anthropic-version`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx

from metering.reconcile.queries import MODEL_DATE

Params = list[tuple[str, str | int | float | bool | None]]

ANTHROPIC_VERSION = "2023-06-01"
MAX_PAGES = 1000  # a report longer than this is cut short (and said so in the log)
_MODEL_DATE = re.compile(MODEL_DATE)


class ReportError(Exception):
    """A report could not be read (the provider refused, or answered what is not a report)."""


@dataclass(frozen=True)
class UsageRecord:
    """One result of one hourly bucket of a usage report."""

    provider: str
    api_key_id: str
    project_id: str  # OpenAI's project, Anthropic's workspace
    reported_model: str
    hour: datetime  # UTC, the bucket's start
    requests: int | None  # None: the report does not count requests (Anthropic)
    input_tokens: int  # every input token: uncached, read from the cache and written to it
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int

    @property
    def model(self) -> str:
        return model_key(self.reported_model)


@dataclass(frozen=True)
class CostRecord:
    """What the provider charged on one day for one model's tokens of one type (USD)."""

    provider: str
    reported_model: str  # '' for what is not a model's tokens (web search, fine-tuning, ...)
    day: date
    token_type: str  # input, cached_input, cache_write, output, other
    amount: float

    @property
    def model(self) -> str:
        return model_key(self.reported_model)


def model_key(name: str) -> str:
    """A model's name without its snapshot date: how llmgw's and the provider's names meet."""
    return _MODEL_DATE.sub("", name)


def _utc(ts: int | float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


async def read_pages(client: httpx.AsyncClient, url: str, params: Params, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every bucket of a paginated report (`data`, `has_more`, `next_page`)."""
    buckets: list[dict[str, Any]] = []
    page: str | None = None
    for _ in range(MAX_PAGES):
        query: Params = params + ([("page", page)] if page else [])
        try:
            resp = await client.get(url, params=query, headers=headers)
        except httpx.HTTPError as exc:
            raise ReportError(f"{url}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise ReportError(f"{url}: HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            body = resp.json()
            buckets.extend(body["data"])
        except (ValueError, KeyError, TypeError):
            raise ReportError(f"{url}: the answer is not a report page") from None
        page = body.get("next_page")
        if not body.get("has_more") or not page:
            return buckets
    raise ReportError(f"{url}: more than {MAX_PAGES} pages")


# ------------------------------------------------------------------------------------- OpenAI

OPENAI_USAGE_PATHS = ("/v1/organization/usage/completions", "/v1/organization/usage/embeddings")
OPENAI_COSTS_PATH = "/v1/organization/costs"
OPENAI_LINE_ITEM_TYPES = {"input": "input", "cached input": "cached_input", "output": "output"}


def openai_usage_records(buckets: list[dict[str, Any]]) -> list[UsageRecord]:
    out = []
    for bucket in buckets:
        hour = _utc(bucket["start_time"])
        for r in bucket.get("results") or []:
            out.append(
                UsageRecord(
                    provider="openai",
                    api_key_id=r.get("api_key_id") or "",
                    project_id=r.get("project_id") or "",
                    reported_model=r.get("model") or "",
                    hour=hour,
                    requests=int(r.get("num_model_requests") or 0),
                    input_tokens=int(r.get("input_tokens") or 0),
                    cached_tokens=int(r.get("input_cached_tokens") or 0),
                    cache_write_tokens=0,
                    output_tokens=int(r.get("output_tokens") or 0),
                )
            )
    return out


def openai_line_item(line_item: str) -> tuple[str, str]:
    """("gpt-4o-2024-08-06", "input") of "gpt-4o-2024-08-06, input"; ("", "other") otherwise."""
    model, sep, kind = line_item.rpartition(", ")
    token_type = OPENAI_LINE_ITEM_TYPES.get(kind.strip().lower()) if sep else None
    return (model.strip(), token_type) if token_type else ("", "other")


def openai_cost_records(buckets: list[dict[str, Any]]) -> list[CostRecord]:
    out = []
    for bucket in buckets:
        day = _utc(bucket["start_time"]).date()
        for r in bucket.get("results") or []:
            amount = r.get("amount") or {}
            if str(amount.get("currency", "usd")).lower() != "usd":
                continue
            model, token_type = openai_line_item(r.get("line_item") or "")
            out.append(CostRecord("openai", model, day, token_type, float(amount.get("value") or 0.0)))
    return out


async def read_openai(
    client: httpx.AsyncClient, api_base: str, admin_key: str, start: datetime, end: datetime
) -> tuple[list[UsageRecord], list[CostRecord]]:
    """Hourly usage and daily costs from `start` (the start of a UTC day) to `end`."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    span: Params = [("start_time", int(start.timestamp())), ("end_time", int(end.timestamp()))]
    usage: list[UsageRecord] = []
    for path in OPENAI_USAGE_PATHS:
        params: Params = [*span, ("bucket_width", "1h"), ("limit", 168)]
        params += [("group_by", g) for g in ("model", "api_key_id", "project_id")]
        usage += openai_usage_records(await read_pages(client, api_base + path, params, headers))
    cost_params: Params = [("start_time", int(start.timestamp())), ("end_time", int(end.timestamp())), ("bucket_width", "1d")]
    cost_params += [("limit", 31), ("group_by", "line_item"), ("group_by", "project_id")]
    costs = openai_cost_records(await read_pages(client, api_base + OPENAI_COSTS_PATH, cost_params, headers))
    return usage, costs


# ---------------------------------------------------------------------------------- Anthropic

ANTHROPIC_USAGE_PATH = "/v1/organizations/usage_report/messages"
ANTHROPIC_COST_PATH = "/v1/organizations/cost_report"
ANTHROPIC_TOKEN_TYPES = {
    "uncached_input_tokens": "input",
    "cache_read_input_tokens": "cached_input",
    "cache_creation.ephemeral_5m_input_tokens": "cache_write",
    "cache_creation.ephemeral_1h_input_tokens": "cache_write",
    "output_tokens": "output",
}


def anthropic_usage_records(buckets: list[dict[str, Any]]) -> list[UsageRecord]:
    out = []
    for bucket in buckets:
        hour = _parse_rfc3339(bucket["starting_at"])
        for r in bucket.get("results") or []:
            creation = r.get("cache_creation") or {}
            written = int(creation.get("ephemeral_5m_input_tokens") or 0) + int(creation.get("ephemeral_1h_input_tokens") or 0)
            cached = int(r.get("cache_read_input_tokens") or 0)
            out.append(
                UsageRecord(
                    provider="anthropic",
                    api_key_id=r.get("api_key_id") or "",
                    project_id=r.get("workspace_id") or "",
                    reported_model=r.get("model") or "",
                    hour=hour,
                    requests=None,
                    input_tokens=int(r.get("uncached_input_tokens") or 0) + cached + written,
                    cached_tokens=cached,
                    cache_write_tokens=written,
                    output_tokens=int(r.get("output_tokens") or 0),
                )
            )
    return out


def anthropic_cost_records(buckets: list[dict[str, Any]]) -> list[CostRecord]:
    out = []
    for bucket in buckets:
        day = _parse_rfc3339(bucket["starting_at"]).date()
        for r in bucket.get("results") or []:
            if str(r.get("currency") or "USD").upper() != "USD":
                continue
            token_type = ANTHROPIC_TOKEN_TYPES.get(r.get("token_type") or "") if r.get("cost_type") == "tokens" else None
            model = (r.get("model") or "") if token_type else ""
            cents = float(r.get("amount") or 0.0)
            out.append(CostRecord("anthropic", model, day, token_type or "other", cents / 100.0))
    return out


async def read_anthropic(
    client: httpx.AsyncClient, api_base: str, admin_key: str, start: datetime, end: datetime
) -> tuple[list[UsageRecord], list[CostRecord]]:
    """Hourly usage and daily costs from `start` (the start of a UTC day) to `end`."""
    headers = {"x-api-key": admin_key, "anthropic-version": ANTHROPIC_VERSION}
    span: Params = [("starting_at", _rfc3339(start)), ("ending_at", _rfc3339(end))]
    params: Params = [*span, ("bucket_width", "1h"), ("limit", 168)]
    params += [("group_by[]", g) for g in ("model", "api_key_id", "workspace_id")]
    usage = anthropic_usage_records(await read_pages(client, api_base + ANTHROPIC_USAGE_PATH, params, headers))
    cost_params: Params = [("starting_at", _rfc3339(start)), ("ending_at", _rfc3339(end))]
    cost_params += [("limit", 31), ("group_by[]", "description"), ("group_by[]", "workspace_id")]
    costs = anthropic_cost_records(await read_pages(client, api_base + ANTHROPIC_COST_PATH, cost_params, headers))
    return usage, costs


READERS = {"openai": read_openai, "anthropic": read_anthropic}
DEFAULT_API_BASES = {"openai": "https://api.openai.com", "anthropic": "https://api.anthropic.com"}
