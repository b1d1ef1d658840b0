"""`llmgw reconcile`'s text: a summary, then only the sections that have rows."""

from __future__ import annotations

import pytest

from llmgw_cli.reconcile import disagrees, render

pytestmark = pytest.mark.unit

LINE = {
    "provider": "openai", "model": "gpt-4o", "hour": "2026-12-03T18:00:00Z", "kind": "ok", "account": "",
    "metered_requests": 2, "billed_requests": 2, "metered_input_tokens": 20, "billed_input_tokens": 20,
    "metered_output_tokens": 4, "billed_output_tokens": 4, "metered_cost": 9e-05, "billed_cost": 9e-05,
    "token_drift": 0, "token_drift_relative": 0.0, "cost_drift": 0.0, "cost_drift_relative": 0.0,
}  # fmt: skip
SUMMARY = {"ok": 1, "drift": 0, "unbilled": 0, "outside": 0, "stale_prices": 0, "metered_cost": 9e-05,
           "billed_cost": 9e-05, "outside_cost": 0.0}  # fmt: skip


def body(**more) -> dict:
    return {"start": "2026-12-02T00:00:00Z", "end": "2026-12-04T00:00:00Z", "threshold": 0.02, "summary": SUMMARY,
            "lines": [LINE], "outside_traffic": [], "stale_prices": [], **more}  # fmt: skip


def test_agreement_prints_the_summary_alone_unless_all_is_asked() -> None:
    text = render(body())
    assert text.splitlines()[0].startswith("reconciliation 2026-12-02T00:00:00Z .. 2026-12-04T00:00:00Z (threshold 2 %): 1 ok")
    assert len(text.splitlines()) == 1
    assert "gpt-4o" in render(body(), everything=True)


def test_drift_outside_traffic_and_stale_prices_have_their_tables() -> None:
    drift = {**LINE, "model": "gpt-4o-mini", "kind": "drift", "billed_output_tokens": 6, "token_drift": -2,
             "token_drift_relative": -0.0769, "cost_drift_relative": -0.125}  # fmt: skip
    outside = {**LINE, "kind": "outside", "account": "key_leaked", "metered_requests": 0, "billed_requests": 7}
    unsent = {**LINE, "kind": "outside", "provider": "anthropic", "model": "claude-sonnet-4-5", "billed_requests": None}
    stale = {"provider": "openai", "model": "gpt-4o-mini", "token_type": "input", "day": "2026-12-03", "tokens": 20,
             "provider_price": 0.2, "llmgw_price": 0.15, "difference_relative": -0.25}  # fmt: skip
    text = render(body(lines=[LINE, drift], outside_traffic=[outside, unsent], stale_prices=[stale]))
    tables = text.split("\n\n")
    assert tables[1].startswith("lines that do not agree:") and "gpt-4o-mini" in tables[1] and "-7.69" in tables[1]
    assert " gpt-4o " not in tables[1]  # the line that agrees is left out
    assert tables[2].startswith("outside traffic") and "key_leaked" in tables[2] and "(llmgw's)" in tables[2]
    assert tables[3].startswith("stale prices") and "-25" in tables[3] and "0.15" in tables[3]


def test_check_tells_agreement_from_the_rest() -> None:
    assert not disagrees(body())
    for kind in ("drift", "unbilled", "outside", "stale_prices"):
        assert disagrees(body(summary={**SUMMARY, kind: 1}))
