"""The pure parts of completions, images, moderations, rerank and the models list: what the edge
refuses and reserves, which deployments serve /completions, how answers are normalised."""

from __future__ import annotations

import json

import msgspec
import pytest

from gateway.errors import GatewayError
from gateway.legacy_completions import parse_completion, prompt_count
from gateway.media_schemas import document_text, parse_images, parse_rerank, worst_search_units
from gateway.models_list import ModelListing, client_name, wildcard_members
from gateway.router import ModelRouter
from llmgw.config import ConfigError, Deployment, parse_deployment
from llmgw.contracts import Caller, Operation, Units, UpstreamRequest
from llmgw.image_units import image_output_tokens, image_units
from workers.budget_cap import apply_cost_cap
from workers.providers.cohere.rerank import cohere_rerank_to_ranked
from workers.providers.completions_chat import LegacyCompletion, chat_prompts
from workers.providers.errors import UpstreamError
from workers.providers.openai_completions import completions_fields, speaks_completions
from workers.providers.openai_media import images_answer_to_usage, moderation_input_usage
from workers.providers.request_body import RequestBody
from workers.providers.rerank import Ranked, RerankAsk, rerank_answer
from workers.providers.rerank_servers import server_answer, server_request
from workers.usage import Usage

pytestmark = pytest.mark.unit


def deployment(provider: str = "openai", model_name: str = "m", upstream: str = "x", **fields: object) -> Deployment:
    return Deployment(id="d", model_name=model_name, provider=provider, upstream_model=upstream, **fields)  # type: ignore[arg-type]


def refused_param(call) -> str | None:
    with pytest.raises((GatewayError, UpstreamError)) as caught:
        call()
    return caught.value.param


# ---- completions ---------------------------------------------------------------------------------


def test_prompts_are_counted_and_mixed_or_empty_lists_refused():
    assert [prompt_count(p) for p in ("a", ["a", "b"], [1, 2, 3], [[1], [2, 3]])] == [1, 2, 1, 2]
    assert refused_param(lambda: prompt_count([])) == "prompt"
    assert refused_param(lambda: prompt_count(["a", 1])) == "prompt"
    assert refused_param(lambda: parse_completion(b'{"model": "m", "prompt": "a", "n": 3, "best_of": 2}')) == "best_of"


@pytest.mark.parametrize(
    ("provider", "upstream", "fields", "native"),
    [
        ("openai", "gpt-4o", {}, False),  # OpenAI's chat models have no /completions
        ("openai", "gpt-3.5-turbo-instruct", {}, True),
        ("openai", "llama-3", {"api_base": "http://vllm.internal/v1"}, True),  # a self-hosted server
        ("hosted_vllm", "llama-3", {"api_base": "http://vllm.internal/v1"}, True),
        ("groq", "llama-3", {}, False),
        ("azure", "gpt-35-turbo-instruct", {}, True),
        ("hosted_vllm", "llama-3", {"extra": (("completions_api", False),)}, False),
        ("openai", "gpt-4o", {"extra": (("completions_api", "true"),)}, True),
    ],
)
def test_which_deployments_serve_completions_themselves(provider, upstream, fields, native):
    if provider == "openai" and "api_base" not in fields:
        fields = {**fields, "api_base": "https://api.openai.com/v1"}
    assert speaks_completions(deployment(provider, upstream=upstream, **fields), upstream) is native


def test_a_native_body_gets_the_default_length_and_the_policy_prompts_first():
    fields = completions_fields(RequestBody(b'{"model": "m", "prompt": ["a", "b"]}'), ["Be kind."])
    assert fields["max_tokens"] == 16 and fields["prompt"] == ["Be kind.\n\na", "Be kind.\n\nb"]
    tokens = completions_fields(RequestBody(b'{"model": "m", "prompt": [1, 2], "max_tokens": 3}'), ["Be kind."])
    assert json.loads(bytes(tokens["max_tokens"])) == 3 and tokens["prompt"] == [1, 2]


def test_what_chat_cannot_take_is_refused_naming_the_field():
    on = deployment("anthropic")
    assert chat_prompts(LegacyCompletion(prompt=["a", "b"]), on) == ["a", "b"]
    for legacy, param in (
        (LegacyCompletion(prompt="a", suffix="z"), "suffix"),
        (LegacyCompletion(prompt="a", logprobs=0), "logprobs"),
        (LegacyCompletion(prompt=[1, 2]), "prompt"),
        (LegacyCompletion(prompt="a", max_tokens=0), "max_tokens"),
    ):
        assert refused_param(lambda legacy=legacy: chat_prompts(legacy, on)) == param


def request(operation: str, body: bytes, cost_cap: float | None) -> UpstreamRequest:
    return UpstreamRequest(
        request_id="req-1",
        reply_to="r",
        operation=operation,
        model_group="m",
        deployment_id="d",
        body=body,
        stream=False,
        include_usage=False,
        deadline=0.0,
        received_at=0.0,
        caller=Caller(key_hash="k"),
        cost_cap=cost_cap,
    )


def test_a_cost_cap_lowers_completion_lengths_only():
    priced = deployment(input_cost_per_token=1e-06, output_cost_per_token=1e-06)
    body = b'{"model": "m", "prompt": "a b"}'
    _, capped = apply_cost_cap(request(Operation.COMPLETIONS, body, 1e-05), RequestBody(body), priced, "x")
    assert capped.fields()["max_tokens"] < 16
    image = b'{"model": "m", "prompt": "a fox"}'
    _, untouched = apply_cost_cap(request(Operation.IMAGES, image, 1e-05), RequestBody(image), priced, "x")
    assert "max_tokens" not in untouched.fields()  # (an image API refuses fields it does not know)


# ---- images and moderations ----------------------------------------------------------------------


def test_image_units_follow_the_apis_defaults():
    assert image_units("dall-e-3", 2, None, None) == Units(images=2, image_size="1024x1024", image_quality="standard")
    assert image_units("gpt-image-1", 1, "auto", "high") == Units(images=1, image_quality="high")
    assert image_output_tokens("gpt-image-1", "1024x1024", "low") == 272
    assert image_output_tokens("gpt-image-1", "auto", "low") == 408  # the most of its quality
    assert image_output_tokens("gpt-image-1", None, None) == 6240
    assert image_output_tokens("dall-e-3", None, None) is None
    assert refused_param(lambda: parse_images(b'{"prompt": "a", "stream": true}')) == "stream"


def test_image_answers_are_metered_by_tokens_when_reported_else_by_images():
    fields = RequestBody(b'{"model": "m", "prompt": "p", "size": "512x512"}').fields()
    by_images = images_answer_to_usage(b'{"created": 1, "data": [{"url": "u"}, {"url": "v"}]}', "dall-e-2", fields)
    assert by_images == Usage(units=Units(images=2, image_size="512x512", image_quality="standard"))
    tokens = b'{"created": 1, "data": [{}], "usage": {"input_tokens": 7, "output_tokens": 272}, "quality": "low"}'
    assert images_answer_to_usage(tokens, "gpt-image-1", fields) == Usage(prompt_tokens=7, completion_tokens=272)


def test_moderation_input_is_counted_as_an_estimate():
    fields = RequestBody(b'{"input": ["abcd", {"type": "text", "text": "efgh"}, {"type": "image_url"}]}').fields()
    assert moderation_input_usage(fields) == Usage(prompt_tokens=2, estimated=True)


# ---- rerank --------------------------------------------------------------------------------------


def test_search_units_at_worst_count_long_documents_in_chunks():
    assert worst_search_units("q", ["a"] * 100, None) == 1
    assert worst_search_units("q", ["a"] * 101, None) == 2
    assert worst_search_units("q", ["x" * 999], None) == 1  # 1000 tokens at most: 2 chunks
    assert worst_search_units("q", ["x" * 999] * 60, None) == 2
    assert worst_search_units("q", ["x" * 999] * 60, 10) == 1  # cut to 10 tokens a document


def test_document_objects_become_text():
    assert document_text({"text": "hello"}, None, 0) == "hello"
    assert document_text({"title": "T", "body": "B", "x": 1}, ["title", "body"], 0) == "title: T\nbody: B"
    assert refused_param(lambda: document_text({"title": "T"}, None, 3)) == "documents[3]"
    _, texts, sent = parse_rerank(b'{"model": "m", "query": "q", "documents": [{"text": "a"}, "b"], "rank_fields": ["text"]}')
    assert texts == ["a", "b"] and json.loads(sent) == {"model": "m", "query": "q", "documents": ["a", "b"]}


def test_rerank_answers_are_cohere_shaped_best_first_and_cut():
    ask = RerankAsk(query="q", documents=["a", "b", "c"], top_n=2, return_documents=True)
    answer = json.loads(rerank_answer("id1", [Ranked(0, 0.1), Ranked(1, 0.9), Ranked(2, 0.5)], ask, Usage(prompt_tokens=9)))
    assert answer["results"] == [
        {"index": 1, "relevance_score": 0.9, "document": {"text": "b"}},
        {"index": 2, "relevance_score": 0.5, "document": {"text": "c"}},
    ]
    assert answer["meta"]["billed_units"] == {"input_tokens": 9}
    units = json.loads(rerank_answer("id2", [Ranked(0, 1.0)], ask, Usage(units=Units(search_units=1))))
    assert units["meta"]["billed_units"] == {"search_units": 1} and "document" in units["results"][0]
    with pytest.raises(UpstreamError) as caught:
        rerank_answer("id", [Ranked(7, 1.0)], ask, Usage())  # a document that was never sent
    assert caught.value.status == 502


def test_rerank_servers_wire_formats_and_their_usage():
    ask = RerankAsk(query="q q", documents=["abcd", "ef"], top_n=1)
    assert json.loads(server_request(ask, "bge", "cohere")) == {
        "model": "bge",
        "query": "q q",
        "documents": ["abcd", "ef"],
        "top_n": 1,
    }
    assert json.loads(server_request(ask, "bge", "tei")) == {"query": "q q", "texts": ["abcd", "ef"], "truncate": True}
    vllm = b'{"id": "r1", "results": [{"index": 1, "relevance_score": 0.7}], "usage": {"total_tokens": 11}}'
    assert server_answer(vllm, ask, "cohere") == ("r1", [Ranked(1, 0.7)], Usage(prompt_tokens=11))
    infinity = b'{"data": [{"index": 0, "relevance_score": 0.2}], "usage": {"prompt_tokens": 5, "total_tokens": 5}}'
    assert server_answer(infinity, ask, "cohere")[1:] == ([Ranked(0, 0.2)], Usage(prompt_tokens=5))
    tei = b'[{"index": 1, "score": 0.9}, {"index": 0, "score": 0.1}]'
    assert server_answer(tei, ask, "tei") == (None, [Ranked(1, 0.9), Ranked(0, 0.1)], Usage(prompt_tokens=3, estimated=True))


def test_cohere_without_billed_units_is_one_search_unit_per_100_documents_estimated():
    ask = RerankAsk(query="q", documents=["d"] * 150)
    _, _, usage = cohere_rerank_to_ranked(b'{"id": "x", "results": [{"index": 0, "relevance_score": 0.5}]}', ask)
    assert usage == Usage(units=Units(search_units=2), estimated=True)


# ---- the models list -----------------------------------------------------------------------------


def test_wildcards_list_their_fixed_models_or_the_vendors_known_ones():
    listed = deployment(model_name="llm/*", upstream="*", api_base="http://llm.internal/{model}/v1", listed_models=("llm/a",))
    assert wildcard_members(listed) == ["llm/a"]
    self_hosted = deployment(model_name="llm/*", upstream="*", api_base="http://llm.internal/v1")
    assert wildcard_members(self_hosted) == []
    vendor = deployment(model_name="openai/*", upstream="*", api_base="https://api.openai.com/v1")
    assert "openai/gpt-4o" in wildcard_members(vendor) and not any("claude" in m for m in wildcard_members(vendor))
    assert not any("gpt-oss" in m for m in wildcard_members(vendor))  # Groq's and Together's models are theirs
    assert client_name(deployment(model_name="team-*", upstream="prefix-*"), "prefix-gpt") == "team-gpt"
    assert client_name(deployment(model_name="team-*", upstream="fixed"), "gpt") is None


def test_the_listing_has_concrete_groups_first_and_a_created_time():
    router = ModelRouter(
        (
            deployment(model_name="gpt-4o", upstream="gpt-4o"),
            deployment(provider="anthropic", model_name="*", upstream="*", api_base="https://api.anthropic.com"),
        )
    )
    listing = ModelListing(router, created=1_750_000_000)
    by_id = {m.id: m for m in listing.models}
    assert by_id["gpt-4o"].owned_by == "openai" and by_id["claude-3-haiku"].owned_by == "anthropic"
    assert {m.created for m in listing.models} == {1_750_000_000}
    assert msgspec.json.decode(msgspec.json.encode(listing.models[0]))["object"] == "model"


def test_a_listed_model_must_match_its_pattern():
    entry = {
        "model_name": "llm/*",
        "params": {"model": "openai/*", "api_base": "http://x/v1"},
        "model_info": {"models": ["other"]},
    }
    with pytest.raises(ConfigError, match="not a name the pattern"):
        parse_deployment(0, entry, {})
    concrete = {"model_name": "gpt", "params": {"model": "openai/gpt-4o"}, "model_info": {"models": ["gpt"]}}
    with pytest.raises(ConfigError, match="only a wildcard"):
        parse_deployment(0, concrete, {})
