"""The reconciler's readers against the fake report APIs (bench/fake_provider_reports.py, served
in this process): every page of a report read, OpenAI's and Anthropic's shapes parsed into the
same records; the hourly cost shared out of the daily cost report; the named queries' parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bench.fake_provider_reports import start_fake
from metering.named_queries import NamedQueryError, named_query
from metering.reconcile.reports import (
    CostRecord,
    ReportError,
    UsageRecord,
    model_key,
    openai_line_item,
    read_anthropic,
    read_openai,
    read_pages,
)
from metering.reconcile.rows import build_rows
from metering.reconcile.service import window

pytestmark = pytest.mark.unit

ADMIN_KEY = "sk-admin-unit-0001"
DAY0 = datetime(2026, 11, 30, tzinfo=UTC)


def record(provider: str, hour: datetime, model: str, key: str, **tokens: int) -> dict:
    return {
        "provider": provider, "hour": int(hour.timestamp()), "model": model, "api_key_id": key, "project_id": "proj_1",
        "requests": tokens.pop("requests", 1), "input_tokens": tokens.get("input_tokens", 0),
        "cached_tokens": tokens.get("cached_tokens", 0), "cache_write_tokens": tokens.get("cache_write_tokens", 0),
        "output_tokens": tokens.get("output_tokens", 0),
        "prices": {"input": 2.5, "cached_input": 1.25, "cache_write": 3.75, "output": 10.0},
    }  # fmt: skip


@pytest.fixture
async def fake():
    handle, _ = await start_fake(api_key=ADMIN_KEY)
    yield handle
    await handle.stop()


async def bill(fake, records: list[dict]) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.post(f"{fake.root_url}/_fake/billing", json={"records": records})).status_code == 200


async def test_openai_usage_and_costs_are_read_page_after_page(fake) -> None:
    early, late = DAY0 + timedelta(hours=3), DAY0 + timedelta(days=1, hours=20)
    await bill(fake, [
        record("openai", early, "gpt-4o-2024-08-06", "key_a", requests=2, input_tokens=1000, cached_tokens=400, output_tokens=100),
        record("openai", late, "gpt-4o-2024-08-06", "key_b", requests=1, input_tokens=10, output_tokens=5),
    ])  # fmt: skip
    async with httpx.AsyncClient() as client:
        usage, costs = await read_openai(client, fake.root_url, ADMIN_KEY, DAY0, DAY0 + timedelta(days=2))
    # 48 hourly buckets at most 168 a page: one page each; the fake's own default would be 24
    assert fake.stats["pages"]["/v1/organization/usage/completions"] == 1
    assert sorted((u.hour, u.api_key_id, u.requests, u.input_tokens, u.cached_tokens, u.output_tokens) for u in usage) == [
        (early, "key_a", 2, 1000, 400, 100),
        (late, "key_b", 1, 10, 0, 5),
    ]
    assert {u.model for u in usage} == {"gpt-4o"} and {u.project_id for u in usage} == {"proj_1"}
    by_type = {(c.day, c.token_type): c.amount for c in costs}
    assert by_type[(DAY0.date(), "input")] == pytest.approx(600 * 2.5e-6)
    assert by_type[(DAY0.date(), "cached_input")] == pytest.approx(400 * 1.25e-6)
    assert by_type[(DAY0.date(), "output")] == pytest.approx(100 * 1e-5)
    assert {c.model for c in costs} == {"gpt-4o"}


async def test_every_page_of_a_report_is_read(fake) -> None:
    hours = [DAY0 + timedelta(hours=h) for h in (1, 30, 60)]
    await bill(fake, [record("openai", h, "gpt-4o-mini", "key_a", input_tokens=10, output_tokens=1) for h in hours])
    params = [("start_time", int(DAY0.timestamp())), ("end_time", int((DAY0 + timedelta(days=3)).timestamp()))]
    params += [("bucket_width", "1h"), ("limit", 24), ("group_by", "model")]
    async with httpx.AsyncClient() as client:
        buckets = await read_pages(
            client, fake.root_url + "/v1/organization/usage/completions", params, {"Authorization": f"Bearer {ADMIN_KEY}"}
        )
    assert fake.stats["pages"]["/v1/organization/usage/completions"] == 3  # 72 hours, 24 a page
    assert [b["start_time"] for b in buckets] == [int((DAY0 + timedelta(hours=h)).timestamp()) for h in range(72)]
    assert sorted(datetime.fromtimestamp(b["start_time"], UTC) for b in buckets if b["results"]) == hours


async def test_anthropic_tokens_and_cents(fake) -> None:
    hour = DAY0 + timedelta(hours=9)
    await bill(fake, [record("anthropic", hour, "claude-sonnet-4-5-20250929", "apikey_1",
                             input_tokens=1000, cached_tokens=300, cache_write_tokens=200, output_tokens=50)])  # fmt: skip
    async with httpx.AsyncClient() as client:
        usage, costs = await read_anthropic(client, fake.root_url, ADMIN_KEY, DAY0, DAY0 + timedelta(days=1))
    (u,) = usage
    assert (u.model, u.requests, u.input_tokens, u.cached_tokens, u.cache_write_tokens, u.output_tokens) == (
        "claude-sonnet-4-5", None, 1000, 300, 200, 50,
    )  # fmt: skip
    amounts = {c.token_type: c.amount for c in costs}
    assert amounts["input"] == pytest.approx(500 * 2.5e-6) and amounts["cache_write"] == pytest.approx(200 * 3.75e-6)
    assert amounts["cached_input"] == pytest.approx(300 * 1.25e-6) and amounts["output"] == pytest.approx(50 * 1e-5)


async def test_a_wrong_admin_key_is_a_report_error_that_names_no_key(fake) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ReportError) as raised:
            await read_openai(client, fake.root_url, "sk-wrong-admin-key-123", DAY0, DAY0 + timedelta(hours=2))
    assert "HTTP 401" in str(raised.value) and "sk-wrong" not in str(raised.value)


def test_hourly_cost_is_the_days_cost_shared_by_tokens_and_outside_keys_are_marked() -> None:
    h1, h2 = DAY0 + timedelta(hours=1), DAY0 + timedelta(hours=2)
    usage = [
        UsageRecord("openai", "key_a", "p", "gpt-4o-2024-08-06", h1, 1, 100, 0, 0, 10),
        UsageRecord("openai", "key_x", "p", "gpt-4o-2024-08-06", h2, 3, 300, 0, 0, 30),
        UsageRecord("openai", "key_a", "p", "gpt-4o-mini", h2, 1, 10, 0, 0, 1),
    ]
    costs = [
        CostRecord("openai", "gpt-4o-2024-08-06", DAY0.date(), "input", 0.002),
        CostRecord("openai", "gpt-4o-2024-08-06", DAY0.date(), "output", 0.0008),
        CostRecord("openai", "", DAY0.date(), "other", 5.0),
    ]
    rows, prices = build_rows(usage, costs, ("key_a",), datetime(2026, 12, 1))
    by_key = {(r[1], r[3]): r for r in rows}
    assert by_key[("key_a", "gpt-4o")][6] is True and by_key[("key_x", "gpt-4o")][6] is False
    assert by_key[("key_a", "gpt-4o")][12] == pytest.approx(0.002 / 4 + 0.0008 / 4)
    assert by_key[("key_x", "gpt-4o")][12] == pytest.approx(0.002 * 3 / 4 + 0.0008 * 3 / 4)
    assert by_key[("key_a", "gpt-4o-mini")][12] is None  # no cost report for it that day: unknown, not 0
    (inp, out) = sorted(prices, key=lambda p: p[2])
    assert inp[:5] == ["openai", "gpt-4o", "input", DAY0.date(), 400] and inp[6] == pytest.approx(2.5e-6)
    assert out[2] == "output" and out[4] == 40 and out[6] == pytest.approx(1e-5)
    every, _ = build_rows(usage, costs, (), datetime(2026, 12, 1))
    assert all(r[6] for r in every)  # no key named: all the organization's traffic is llmgw's


def test_names_line_items_and_the_window() -> None:
    assert model_key("gpt-4o-2024-08-06") == "gpt-4o" and model_key("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert model_key("gpt-4o-mini") == "gpt-4o-mini" and model_key("o3") == "o3"
    assert openai_line_item("gpt-4o-2024-08-06, cached input") == ("gpt-4o-2024-08-06", "cached_input")
    assert openai_line_item("Image models") == ("", "other")
    start, end = window(datetime(2026, 12, 3, 18, 20, tzinfo=UTC), 3)
    assert (start, end) == (datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 3, 19, tzinfo=UTC))  # whole days
    start, _ = window(datetime(2026, 12, 3, 1, 5, tzinfo=UTC), 3)
    assert start == datetime(2026, 12, 2, tzinfo=UTC)


def test_the_named_queries_check_their_parameters() -> None:
    good = {"start": "2026-12-03T00:00:00Z", "end": "2026-12-04T00:00:00+00:00", "threshold": 0.02}
    _, bound = named_query("reconciliation", good)
    assert bound == {"start": "2026-12-03 00:00:00", "end": "2026-12-04 00:00:00", "threshold": 0.02, "provider": ""}
    for bad in ({**good, "threshold": -1}, {**good, "start": "yesterday"}, {**good, "limit": 3}, {**good, "threshold": True}):
        with pytest.raises(NamedQueryError):
            named_query("stale_prices", bad)
