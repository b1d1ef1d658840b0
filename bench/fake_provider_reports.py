"""Fake usage and cost reports of OpenAI and Anthropic (their organization admin APIs), for the
reconciler's tests and benchmarks.

The wire formats follow the public API references:
  OpenAI, https://platform.openai.com/docs/api-reference/usage (Usage API) and
  https://platform.openai.com/docs/api-reference/usage/costs (Costs API):
    GET /v1/organization/usage/completions and /v1/organization/usage/embeddings
      `start_time`, `end_time` (Unix s, end excluded), `bucket_width` (1m, 1h, 1d), `group_by`
      (repeated: model, api_key_id, project_id, ...), `limit` (buckets per page), `page`;
      answer `{"object": "page", "data": [bucket], "has_more", "next_page"}`, a bucket
      `{"object": "bucket", "start_time", "end_time", "results": [...]}`, a result
      `{"object": "organization.usage.completions.result", "input_tokens" (cached included),
      "input_cached_tokens", "output_tokens", "num_model_requests", "model", "api_key_id",
      "project_id", "user_id", "batch"}` (the fields not grouped by are null);
    GET /v1/organization/costs  daily buckets (`bucket_width=1d`), `group_by` line_item and
      project_id; a result `{"object": "organization.costs.result", "amount": {"value",
      "currency": "usd"}, "line_item": "<model>, input" | "<model>, cached input" |
      "<model>, output", "project_id"}`. Credential: `Authorization: Bearer <admin key>`.
  Anthropic, https://docs.anthropic.com/en/api/admin-api/usage-cost/get-messages-usage-report and
  https://docs.anthropic.com/en/api/admin-api/usage-cost/get-cost-report:
    GET /v1/organizations/usage_report/messages  `starting_at`, `ending_at` (RFC 3339),
      `bucket_width`, `group_by[]` (model, api_key_id, workspace_id, ...), `limit`, `page`;
      answer `{"data": [{"starting_at", "ending_at", "results": [{"uncached_input_tokens",
      "cache_creation": {"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"},
      "cache_read_input_tokens", "output_tokens", "server_tool_use": {"web_search_requests"},
      "model", "api_key_id", "workspace_id", "service_tier", "context_window"}]}], "has_more",
      "next_page"}`;
    GET /v1/organizations/cost_report  daily buckets, `group_by[]` description, workspace_id; a
      result `{"currency": "USD", "amount": "<cents, decimal string>", "workspace_id",
      "description", "cost_type": "tokens", "context_window", "model", "service_tier",
      "token_type": "uncached_input_tokens" | "output_tokens" | "cache_read_input_tokens" |
      "cache_creation.ephemeral_5m_input_tokens"}`.
    Credential: `x-api-key: <admin key>` and an `anthropic-version` header.

What the fake reports is what a test bills: POST /_fake/billing `{"records": [{"provider",
"hour" (Unix s), "model", "api_key_id", "project_id", "requests", "input_tokens" (every input
token), "cached_tokens", "cache_write_tokens", "output_tokens", "prices": {"input", "cached_input",
"cache_write", "output"} (USD per 1M tokens: what the provider charges)}]}` adds records (one
record per call of the same key adds up); POST /_fake/reset forgets them. Buckets are returned for
every hour (day) of the range asked, empty ones included, `limit` of them a page (default 24 for
hours, 7 for days: a two-day range takes three pages), `next_page` an opaque cursor.
GET /_fake/stats -> {"requests", "pages" (by path), "auth_failures"}.

CLI:  python -m bench.fake_provider_reports --host 127.0.0.1 --port 0 --api-key ADMIN_KEY  (prints "READY <port>")
"""

from __future__ import annotations

import base64
import json
import sys
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from bench.fake_http import FakeServerHandle, Request, Response, fake_cli, start_app

JSON_HEADERS = {"Content-Type": "application/json"}
HOUR, DAY = 3600, 86400
WIDTHS = {"1m": 60, "1h": HOUR, "1d": DAY}
DEFAULT_LIMITS = {60: 60, HOUR: 24, DAY: 7}
TOKEN_TYPES = ("input", "cached_input", "cache_write", "output")
OPENAI_LINE_ITEMS = {"input": "input", "cached_input": "cached input", "output": "output"}
ANTHROPIC_TOKEN_TYPES = {
    "input": "uncached_input_tokens",
    "cached_input": "cache_read_input_tokens",
    "cache_write": "cache_creation.ephemeral_5m_input_tokens",
    "output": "output_tokens",
}


def _json(status: int, body: Any) -> Response:
    return Response(status, json.dumps(body).encode(), dict(JSON_HEADERS))


def _rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _cursor(ts: int) -> str:
    return base64.urlsafe_b64encode(f"bucket:{ts}".encode()).decode()


def _uncursor(page: str) -> int:
    return int(base64.urlsafe_b64decode(page.encode()).decode().removeprefix("bucket:"))


def tokens_by_type(r: dict[str, Any]) -> dict[str, int]:
    cached, written = int(r.get("cached_tokens", 0)), int(r.get("cache_write_tokens", 0))
    return {
        "input": int(r.get("input_tokens", 0)) - cached - written,
        "cached_input": cached,
        "cache_write": written,
        "output": int(r.get("output_tokens", 0)),
    }


class FakeReports:
    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key
        self.records: list[dict[str, Any]] = []
        self.stats: dict[str, Any] = {"requests": 0, "pages": defaultdict(int), "auth_failures": 0}

    async def handle(self, request: Request) -> Response:
        self.stats["requests"] += 1
        if request.path == "/_fake/stats":
            return _json(200, {**self.stats, "pages": dict(self.stats["pages"])})
        if request.path == "/_fake/reset" and request.method == "POST":
            self.records.clear()
            return _json(200, {"ok": True})
        if request.path == "/_fake/billing" and request.method == "POST":
            self.records.extend(json.loads(request.body)["records"])
            return _json(200, {"records": len(self.records)})
        query = {k: v for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        if request.path.startswith("/v1/organization/"):
            if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                self.stats["auth_failures"] += 1
                return _json(
                    401,
                    {
                        "error": {
                            "message": "Invalid admin key.",
                            "type": "invalid_request_error",
                            "code": "invalid_api_key",
                            "param": None,
                        }
                    },
                )
            return self._openai(request.path, query)
        if request.path.startswith("/v1/organizations/"):
            if self.api_key and request.headers.get("x-api-key") != self.api_key:
                self.stats["auth_failures"] += 1
                return _json(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
            if not request.headers.get("anthropic-version"):
                return _json(
                    400,
                    {
                        "type": "error",
                        "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"},
                    },
                )
            return self._anthropic(request.path, query)
        return _json(
            404, {"error": {"message": f"no route {request.path}", "type": "invalid_request_error", "code": None, "param": None}}
        )

    # ------------------------------------------------------------------------------- paging

    def _buckets(self, start: int, end: int, width: int, query: dict[str, list[str]]) -> tuple[list[int], str | None]:
        limit = int((query.get("limit") or [DEFAULT_LIMITS[width]])[0])
        first = start - start % width
        if query.get("page"):
            first = _uncursor(query["page"][0])
        starts = list(range(first, end, width))
        page, rest = starts[:limit], starts[limit:]
        return page, (_cursor(rest[0]) if rest else None)

    def _records(self, provider: str, lo: int, hi: int, embeddings: bool = False) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records
            if r["provider"] == provider and lo <= int(r["hour"]) < hi and bool(r.get("embeddings")) == embeddings
        ]

    # ------------------------------------------------------------------------------- OpenAI

    def _openai(self, path: str, query: dict[str, list[str]]) -> Response:
        self.stats["pages"][path] += 1
        start, end = int(query["start_time"][0]), int((query.get("end_time") or [str(int(datetime.now(UTC).timestamp()))])[0])
        if path == "/v1/organization/costs":
            return self._openai_costs(start, end, query)
        if path not in ("/v1/organization/usage/completions", "/v1/organization/usage/embeddings"):
            return _json(
                404, {"error": {"message": "unknown report", "type": "invalid_request_error", "code": None, "param": None}}
            )
        kind = path.rsplit("/", 1)[-1]
        width = WIDTHS[(query.get("bucket_width") or ["1d"])[0]]
        groups = set(query.get("group_by") or [])
        starts, next_page = self._buckets(start, end, width, query)
        data = []
        for b in starts:
            sums: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for r in self._records("openai", b, b + width, embeddings=kind == "embeddings"):
                key = tuple(r.get(g) if g in groups else None for g in ("model", "api_key_id", "project_id"))
                t = sums[key]
                t["input_tokens"] += int(r.get("input_tokens", 0))
                t["input_cached_tokens"] += int(r.get("cached_tokens", 0))
                t["output_tokens"] += int(r.get("output_tokens", 0))
                t["num_model_requests"] += int(r.get("requests", 0))
            results = []
            for (model, key_id, project), t in sums.items():
                result = {
                    "object": f"organization.usage.{kind}.result",
                    **t,
                    "model": model,
                    "api_key_id": key_id,
                    "project_id": project,
                    "user_id": None,
                    "batch": None,
                }
                if kind == "embeddings":
                    result.pop("input_cached_tokens")
                    result.pop("output_tokens")
                results.append(result)
            data.append({"object": "bucket", "start_time": b, "end_time": b + width, "results": results})
        return _json(200, {"object": "page", "data": data, "has_more": next_page is not None, "next_page": next_page})

    def _openai_costs(self, start: int, end: int, query: dict[str, list[str]]) -> Response:
        starts, next_page = self._buckets(start, end, DAY, query)
        data = []
        for b in starts:
            amounts: dict[tuple[str, str], float] = defaultdict(float)
            for r in self._records("openai", b, b + DAY) + self._records("openai", b, b + DAY, embeddings=True):
                for token_type, n in tokens_by_type(r).items():
                    if n and token_type in OPENAI_LINE_ITEMS:
                        price = float(r["prices"].get(token_type, r["prices"]["input"]))
                        amounts[(f"{r['model']}, {OPENAI_LINE_ITEMS[token_type]}", r.get("project_id") or "")] += n * price / 1e6
            results = [
                {
                    "object": "organization.costs.result",
                    "amount": {"value": round(v, 9), "currency": "usd"},
                    "line_item": line_item,
                    "project_id": project or None,
                }
                for (line_item, project), v in amounts.items()
            ]
            data.append({"object": "bucket", "start_time": b, "end_time": b + DAY, "results": results})
        return _json(200, {"object": "page", "data": data, "has_more": next_page is not None, "next_page": next_page})

    # ---------------------------------------------------------------------------- Anthropic

    def _anthropic(self, path: str, query: dict[str, list[str]]) -> Response:
        self.stats["pages"][path] += 1
        start = _epoch(query["starting_at"][0])
        end = _epoch(query["ending_at"][0]) if query.get("ending_at") else int(datetime.now(UTC).timestamp())
        if path == "/v1/organizations/cost_report":
            return self._anthropic_costs(start, end, query)
        if path != "/v1/organizations/usage_report/messages":
            return _json(404, {"type": "error", "error": {"type": "not_found_error", "message": "unknown report"}})
        width = WIDTHS[(query.get("bucket_width") or ["1d"])[0]]
        groups = set(query.get("group_by[]") or [])
        starts, next_page = self._buckets(start, end, width, query)
        data = []
        for b in starts:
            sums: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for r in self._records("anthropic", b, b + width):
                key = tuple(
                    r.get(g if g != "workspace_id" else "project_id") if g in groups else None
                    for g in ("model", "api_key_id", "workspace_id")
                )
                t, types = sums[key], tokens_by_type(r)
                t["uncached_input_tokens"] += types["input"]
                t["cache_read_input_tokens"] += types["cached_input"]
                t["ephemeral_5m_input_tokens"] += types["cache_write"]
                t["output_tokens"] += types["output"]
            results = [
                {
                    "uncached_input_tokens": t["uncached_input_tokens"],
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": t["ephemeral_5m_input_tokens"],
                        "ephemeral_1h_input_tokens": 0,
                    },
                    "cache_read_input_tokens": t["cache_read_input_tokens"],
                    "output_tokens": t["output_tokens"],
                    "server_tool_use": {"web_search_requests": 0},
                    "model": model,
                    "api_key_id": key_id,
                    "workspace_id": workspace,
                    "service_tier": None,
                    "context_window": None,
                }
                for (model, key_id, workspace), t in sums.items()
            ]
            data.append({"starting_at": _rfc3339(b), "ending_at": _rfc3339(b + width), "results": results})
        return _json(200, {"data": data, "has_more": next_page is not None, "next_page": next_page})

    def _anthropic_costs(self, start: int, end: int, query: dict[str, list[str]]) -> Response:
        starts, next_page = self._buckets(start, end, DAY, query)
        data = []
        for b in starts:
            cents: dict[tuple[str, str, str], float] = defaultdict(float)
            for r in self._records("anthropic", b, b + DAY):
                for token_type, n in tokens_by_type(r).items():
                    if n:
                        price = float(r["prices"].get(token_type, r["prices"]["input"]))
                        cents[(r["model"], ANTHROPIC_TOKEN_TYPES[token_type], r.get("project_id") or "")] += n * price / 1e6 * 100
            results = [
                {
                    "currency": "USD",
                    "amount": f"{v:.6f}",
                    "workspace_id": workspace or None,
                    "description": f"{model} {token_type}",
                    "cost_type": "tokens",
                    "context_window": "0-200k",
                    "model": model,
                    "service_tier": "standard",
                    "token_type": token_type,
                }
                for (model, token_type, workspace), v in cents.items()
            ]
            data.append({"starting_at": _rfc3339(b), "ending_at": _rfc3339(b + DAY), "results": results})
        return _json(200, {"data": data, "has_more": next_page is not None, "next_page": next_page})


async def start_fake(host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> tuple[FakeServerHandle, int]:
    """Start the fake on the running loop; returns (handle, actual port)."""
    return await start_app(FakeReports(api_key), host, port)


def main(argv: list[str] | None = None) -> None:
    fake_cli(
        "python -m bench.fake_provider_reports",
        __doc__,
        lambda a: start_fake(a.host, a.port, a.api_key),
        argv,
        "the admin key the reports require",
    )


if __name__ == "__main__":
    sys.exit(main())
