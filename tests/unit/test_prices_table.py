"""The shipped price table (llmgw/prices.json): it parses, covers every provider llmgw knows, dates
every price, holds the public list prices, and yields to a deployment's own prices."""

from __future__ import annotations

import datetime
import json
from importlib.resources import files
from typing import Any

import pytest

from llmgw.catalog import PROVIDERS
from llmgw.config import Deployment
from llmgw.contracts import Units
from llmgw.prices import PER_MILLION, Price, _entry, cost, load_table, price_for, table_price, units_cost

pytestmark = pytest.mark.unit

ENTRY_FIELDS = {
    "input", "output", "cached_input", "cache_write", "above", "max_output_tokens", "image", "audio_minute",
    "characters_1m", "search_units_1k", "request", "text_input", "image_input", "note",
}  # fmt: skip
SECTION_FIELDS = {"source", "as_of", "models", "prices_of", "note", "unpriced"}


def raw_table() -> dict[str, Any]:
    return json.loads(files("llmgw").joinpath("prices.json").read_text())


def sections() -> dict[str, dict[str, Any]]:
    return raw_table()["providers"]


def deployment(provider: str, upstream: str, **fields: Any) -> Deployment:
    return Deployment(id="d", model_name="m", provider=provider, upstream_model=upstream, **fields)


def per_million(value: float) -> float:
    return round(value * PER_MILLION, 6)


def test_every_entry_parses_with_known_fields_and_no_negative_price():
    for provider, section in sections().items():
        assert set(section) <= SECTION_FIELDS, provider
        for name, raw in section.get("models", {}).items():
            assert set(raw) <= ENTRY_FIELDS, (provider, name)
            price = _entry(raw)
            rates = [price.input, price.output, price.cached_input, *price.image.values()]
            rates += [r for r in (price.cache_write, price.audio_second, price.character, price.search_unit) if r is not None]
            assert all(r >= 0 for r in rates), (provider, name)
            assert price.max_output_tokens > 0
            assert all(t.above > 0 and t.input >= price.input for t in price.tiers), (provider, name)
    assert load_table().models["gpt-4o"] == _entry(sections()["openai"]["models"]["gpt-4o"])


def test_every_provider_llmgw_supports_has_prices_or_says_why_not():
    table = sections()
    assert set(PROVIDERS) <= set(table)
    for provider in PROVIDERS:
        section = table[provider]
        listed = section.get("models") or any(table[p].get("models") for p in section.get("prices_of", ()))
        assert listed or section.get("unpriced"), provider
    for provider in ("openai", "anthropic", "gemini", "vertex_ai", "bedrock", "cohere", "mistral", "groq", "deepseek"):
        assert table[provider]["models"], provider


def test_every_entry_has_the_date_and_the_public_page_its_price_was_taken_from():
    for provider, section in sections().items():
        if not section.get("models") and not section.get("prices_of"):
            continue
        assert section["source"].startswith("https://"), provider
        assert datetime.date.fromisoformat(section["as_of"]) <= datetime.date.fromisoformat(raw_table()["version"])


def test_a_section_priced_as_another_names_a_section_that_exists():
    table = sections()
    for provider, section in table.items():
        assert all(other in table and other != provider for other in section.get("prices_of", ())), provider


TOKEN_PRICES = [  # (provider, model, input, output, cached input) USD per 1M tokens
    ("openai", "gpt-image-1", 5.0, 40.0, 1.25),
    ("openai", "gpt-3.5-turbo-instruct", 1.5, 2.0, 1.5),
    ("openai", "davinci-002", 2.0, 2.0, 2.0),
    ("openai", "babbage-002", 0.4, 0.4, 0.4),
    ("openai", "omni-moderation-latest", 0.0, 0.0, 0.0),
    ("openai", "text-moderation-latest", 0.0, 0.0, 0.0),
    ("openai", "text-embedding-3-small", 0.02, 0.0, 0.02),
    ("openai", "text-embedding-3-large", 0.13, 0.0, 0.13),
    ("openai", "text-embedding-ada-002", 0.10, 0.0, 0.10),
    ("openai", "gpt-4o-transcribe", 6.0, 10.0, 6.0),
    ("openai", "gpt-4o-mini-tts", 0.6, 12.0, 0.6),
    ("openai", "gpt-4o-2024-08-06", 2.5, 10.0, 1.25),
    ("openai", "gpt-4o-2024-05-13", 5.0, 15.0, 5.0),
    ("openai", "gpt-4.1-2025-04-14", 2.0, 8.0, 0.5),
    ("openai", "gpt-5", 1.25, 10.0, 0.125),
    ("openai", "gpt-5-mini-2025-08-07", 0.25, 2.0, 0.025),
    ("openai", "o3-mini-2025-01-31", 1.1, 4.4, 0.55),
    ("openai", "o4-mini", 1.1, 4.4, 0.275),
    ("azure", "gpt-4o", 2.5, 10.0, 1.25),
    ("anthropic", "claude-3-haiku-20240307", 0.25, 1.25, 0.03),
    ("anthropic", "claude-3-5-sonnet-20241022", 3.0, 15.0, 0.3),
    ("anthropic", "claude-3-7-sonnet-latest", 3.0, 15.0, 0.3),
    ("anthropic", "claude-sonnet-4-20250514", 3.0, 15.0, 0.3),
    ("anthropic", "claude-opus-4-1-20250805", 15.0, 75.0, 1.5),
    ("anthropic", "claude-opus-4-5-20251101", 5.0, 25.0, 0.5),
    ("anthropic", "claude-haiku-4-5", 1.0, 5.0, 0.1),
    ("vertex_ai", "claude-sonnet-4-5@20250929", 3.0, 15.0, 0.3),
    ("gemini", "gemini-1.5-pro-002", 1.25, 5.0, 0.3125),
    ("gemini", "gemini-2.0-flash-001", 0.10, 0.40, 0.025),
    ("vertex_ai", "gemini-2.0-flash-001", 0.15, 0.60, 0.0375),
    ("vertex_ai", "gemini-2.5-pro", 1.25, 10.0, 0.125),
    ("gemini", "gemini-2.5-flash-lite-preview-06-17", 0.10, 0.40, 0.01),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", 3.0, 15.0, 0.3),
    ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 3.0, 15.0, 0.3),
    ("bedrock", "amazon.nova-pro-v1:0", 0.8, 3.2, 0.2),
    ("bedrock", "eu.amazon.nova-micro-v1:0", 0.035, 0.14, 0.00875),
    ("bedrock", "meta.llama3-3-70b-instruct-v1:0", 0.72, 0.72, 0.72),
    ("cohere", "command-r-08-2024", 0.15, 0.6, 0.15),
    ("cohere", "command-a-03-2025", 2.5, 10.0, 2.5),
    ("cohere", "embed-english-v3.0", 0.1, 0.0, 0.1),
    ("mistral", "mistral-large-latest", 2.0, 6.0, 2.0),
    ("groq", "llama-3.3-70b-versatile", 0.59, 0.79, 0.59),
    ("groq", "openai/gpt-oss-120b", 0.15, 0.60, 0.075),
    ("fireworks_ai", "accounts/fireworks/models/gpt-oss-20b", 0.07, 0.30, 0.07),
    ("together_ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 0.88, 0.88, 0.88),
    ("deepseek", "deepseek-chat", 0.28, 0.42, 0.028),
    ("openai_compatible", "grok-4-0709", 3.0, 15.0, 0.75),
    ("openai_compatible", "grok-3-mini", 0.3, 0.5, 0.075),
]


@pytest.mark.parametrize(("provider", "model", "input", "output", "cached"), TOKEN_PRICES)
def test_the_table_holds_the_list_token_prices(provider: str, model: str, input: float, output: float, cached: float):
    price = price_for(deployment(provider, model), model)
    assert price is not None
    assert (per_million(price.input), per_million(price.output), per_million(price.cached_input)) == (input, output, cached)


def test_images_are_priced_by_size_and_quality():
    dall_e_3, dall_e_2 = table_price("dall-e-3", "openai"), table_price("dall-e-2", "openai")
    assert dall_e_3 is not None and dall_e_2 is not None
    assert dall_e_3.image_price("1024x1024", "standard") == 0.04
    assert dall_e_3.image_price("1024x1792", "standard") == dall_e_3.image_price("1792x1024", "standard") == 0.08
    assert dall_e_3.image_price("1024x1024", "hd") == 0.08
    assert dall_e_3.image_price("1024x1792", "hd") == dall_e_3.image_price("1792x1024", "hd") == 0.12
    assert [dall_e_2.image_price(s, "standard") for s in ("256x256", "512x512", "1024x1024")] == [0.016, 0.018, 0.02]
    assert units_cost(dall_e_3, Units(images=2, image_size="1792x1024", image_quality="hd")) == (pytest.approx(0.24), True)
    assert sections()["openai"]["models"]["gpt-image-1"]["image_input"] == 10.0


def test_audio_speech_and_rerank_have_their_unit_prices():
    by_minute = {m: table_price(m, "openai") for m in ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")}
    assert {m: round(p.audio_second * 60, 6) for m, p in by_minute.items() if p and p.audio_second} == {
        "whisper-1": 0.006,
        "gpt-4o-transcribe": 0.006,
        "gpt-4o-mini-transcribe": 0.003,
    }
    assert sections()["openai"]["models"]["gpt-4o-transcribe"]["text_input"] == 2.5
    assert sections()["openai"]["models"]["gpt-4o-mini-tts"]["audio_minute"] == 0.015
    tts, tts_hd = table_price("tts-1", "openai"), table_price("tts-1-hd", "openai")
    assert tts is not None and tts_hd is not None
    assert (per_million(tts.character or 0), per_million(tts_hd.character or 0)) == (15.0, 30.0)
    for model in ("rerank-v3.5", "rerank-english-v3.0", "rerank-multilingual-v3.0"):
        rerank = table_price(model, "cohere")
        assert rerank is not None and units_cost(rerank, Units(search_units=1000)) == (pytest.approx(2.0), True)


def test_claude_cache_writes_and_reads_have_their_own_prices():
    sonnet = table_price("claude-3-7-sonnet-20250219", "anthropic")
    assert sonnet is not None and sonnet.cache_write is not None
    assert per_million(sonnet.cache_write) == 3.75
    # 1M prompt tokens: 200k read from the cache, 300k written to it, 500k plain; 1M out
    assert cost(sonnet, 1_000_000, 1_000_000, 200_000, 300_000) == pytest.approx(0.5 * 3 + 0.2 * 0.3 + 0.3 * 3.75 + 15)
    for model in (
        "claude-3-haiku",
        "claude-3-5-haiku",
        "claude-3-opus",
        "claude-sonnet-4",
        "claude-opus-4-1",
        "claude-haiku-4-5",
    ):
        price = table_price(model, "anthropic")
        assert price is not None and price.cache_write is not None and price.cache_write > price.input > price.cached_input


def test_a_long_prompt_is_priced_at_its_tier():
    pro = table_price("gemini-2.5-pro", "gemini")
    assert pro is not None
    assert cost(pro, 200_000, 1_000_000) == pytest.approx(0.2 * 1.25 + 10.0)  # at the threshold: the lower tier
    assert cost(pro, 400_000, 1_000_000) == pytest.approx(0.4 * 2.5 + 15.0)
    assert cost(pro, 400_000, 0, cached_tokens=100_000) == pytest.approx(0.3 * 2.5 + 0.1 * 0.25)
    old_pro = table_price("gemini-1.5-pro", "gemini")
    assert old_pro is not None and cost(old_pro, 150_000, 0) == pytest.approx(0.15 * 2.5)
    sonnet = table_price("claude-sonnet-4-5-20250929", "anthropic")
    assert sonnet is not None and cost(sonnet, 300_000, 100_000) == pytest.approx(0.3 * 6.0 + 0.1 * 22.5)


def test_a_deployment_override_wins_over_the_table():
    listed = price_for(deployment("openai", "gpt-4o"), "gpt-4o")
    own = price_for(deployment("openai", "gpt-4o", input_cost_per_token=1e-06, output_cost_per_token=2e-06), "gpt-4o")
    assert listed is not None and own is not None and listed != own
    assert (own.input, own.output, own.cached_input) == (1e-06, 2e-06, 1e-06)
    assert cost(own, 1000, 1000, cached_tokens=500) == pytest.approx(0.003)
    long_prompt = price_for(
        deployment("gemini", "gemini-2.5-pro", input_cost_per_token=1e-06, output_cost_per_token=0.0), "gemini-2.5-pro"
    )
    assert long_prompt is not None and cost(long_prompt, 1_000_000, 0) == pytest.approx(1.0)  # no table tier
    images = price_for(deployment("openai", "dall-e-3", unit_prices=(("output_cost_per_image", 0.5),)), "dall-e-3")
    assert images is not None and units_cost(images, Units(images=1, image_size="1024x1024", image_quality="hd")) == (0.5, True)
    rerank = price_for(deployment("cohere", "rerank-v3.5", unit_prices=(("input_cost_per_query", 0.001),)), "rerank-v3.5")
    assert rerank is not None and units_cost(rerank, Units(search_units=10)) == (pytest.approx(0.01), True)


def test_a_self_hosted_model_the_table_does_not_know_has_no_price():
    assert price_for(deployment("hosted_vllm", "my-finetune-7b"), "my-finetune-7b") is None
    assert isinstance(price_for(deployment("hosted_vllm", "my-finetune-7b", input_cost_per_token=1e-07), "x"), Price)


def test_a_usage_record_pays_its_cache_writes_at_the_cache_write_price():
    from workers.usage import Usage, cost_of

    claude = deployment("anthropic", "claude-3-7-sonnet-20250219")
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=0, cached_tokens=200_000, cache_write_tokens=300_000)
    assert cost_of(usage, claude, "claude-3-7-sonnet-20250219") == (pytest.approx(0.5 * 3 + 0.2 * 0.3 + 0.3 * 3.75), True)
