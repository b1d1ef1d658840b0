"""Prices of units other than tokens: the table's entries and a deployment's LiteLLM-style overrides."""

from __future__ import annotations

import pytest

from llmgw.config import Deployment
from llmgw.contracts import Units
from llmgw.prices import Price, _entry, price_for, units_cost

pytestmark = pytest.mark.unit


def deployment(**fields: object) -> Deployment:
    return Deployment(id="d", model_name="m", provider="openai", upstream_model="no-such-model-anywhere", **fields)  # type: ignore[arg-type]


def test_a_table_entry_prices_images_by_size_and_quality_and_audio_by_the_minute():
    price = _entry({"image": {"1024x1024/standard": 0.04, "1024x1024/hd": 0.08, "*": 0.1}, "audio_minute": 0.006})
    two_hd = Units(images=2, image_size="1024x1024", image_quality="hd")
    assert units_cost(price, two_hd) == (pytest.approx(0.16), True)
    assert units_cost(price, Units(images=1, image_size="256x256")) == (pytest.approx(0.1), True)  # "*"
    assert units_cost(price, Units(audio_seconds=90.0)) == (pytest.approx(0.009), True)


def test_a_unit_without_a_price_is_flagged_unknown_and_costs_nothing():
    price = _entry({"input": 1.0, "output": 2.0})
    assert units_cost(price, Units(characters=1000)) == (0.0, False)
    assert units_cost(price, None) == (0.0, True)


def test_deployment_unit_prices_override_and_extend_the_table():
    priced = price_for(
        deployment(
            unit_prices=(("output_cost_per_image", 0.02), ("input_cost_per_character", 1.5e-05), ("input_cost_per_query", 0.002))
        ),
        "no-such-model-anywhere",
    )
    assert isinstance(priced, Price)
    assert units_cost(priced, Units(images=3, image_size="1024x1024", image_quality="hd")) == (pytest.approx(0.06), True)
    assert units_cost(priced, Units(characters=2000, search_units=2)) == (pytest.approx(0.034), True)
    assert price_for(deployment(), "no-such-model-anywhere") is None
