"""Image generation, moderations, rerank and the models list through the whole gateway: the
official `openai` SDK (images, moderations, models) against bench/fake_openai.py, the `cohere` SDK
against bench/fake_cohere.py's `/v2/rerank`, plain HTTP against a vLLM-style rerank server
(bench/fake_openai.py) and text-embeddings-inference (bench/fake_tei.py). Every request has one
usage row with the units or tokens the fake reported and cost = units x the deployment's price."""

from __future__ import annotations

import base64

import cohere
import httpx
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import FakeUpstream
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

COHERE_KEY = "co-e2e-media-secret-0002"
TEI_KEY = "tei-e2e-media-secret-0003"
IMAGE_PRICE = 0.04  # USD per image (dall-e-3), set on the deployment
AZURE_IMAGE_PRICE = 0.08
GPT_IMAGE_PRICES = (5e-06, 4e-05)  # USD per input and output token
SEARCH_UNIT_PRICE = 0.002
VLLM_RERANK_PRICE = 2e-08  # USD per token
TEI_RERANK_PRICE = 1e-08
DOCUMENTS = ["Paris is the capital of France", "Berlin is in Germany", "the capital city of France is big"]
QUERY = "capital of France"


@pytest.fixture(scope="module")
def cohere_fake(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("cohere"), COHERE_KEY, module="bench.fake_cohere").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def tei_fake(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("tei"), TEI_KEY, module="bench.fake_tei").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, cohere_fake, tei_fake, tmp_path_factory: pytest.TempPathFactory):
    base, key = upstream.base_url, "os.environ/E2E_UPSTREAM_KEY"
    config = f"""model_list:
  - model_name: dall-e-3
    params: {{model: openai/dall-e-3, api_base: "{base}", api_key: {key}, output_cost_per_image: {IMAGE_PRICE}}}
  - model_name: gpt-image-1
    params:
      model: openai/gpt-image-1
      api_base: "{base}"
      api_key: {key}
      input_cost_per_token: {GPT_IMAGE_PRICES[0]}
      output_cost_per_token: {GPT_IMAGE_PRICES[1]}
  - model_name: azure-images
    params:
      model: azure/my-dalle-3
      api_base: "{upstream.root_url}"
      api_key: {key}
      api_version: "2024-10-21"
      output_cost_per_image: {AZURE_IMAGE_PRICE}
  - model_name: omni-moderation-latest
    params: {{model: openai/omni-moderation-latest, api_base: "{base}", api_key: {key}, input_cost_per_token: 0}}
  - model_name: rerank-v3.5
    params:
      model: cohere/rerank-v3.5
      api_base: "{cohere_fake.root_url}"
      api_key: os.environ/E2E_COHERE_KEY
      input_cost_per_query: {SEARCH_UNIT_PRICE}
  - model_name: bge-reranker
    params:
      model: hosted_vllm/BAAI/bge-reranker-v2-m3
      api_base: "{base}"
      api_key: {key}
      input_cost_per_token: {VLLM_RERANK_PRICE}
  - model_name: tei-reranker
    params:
      model: openai_compatible/bge-reranker-base
      api_base: "{tei_fake.root_url}"
      api_key: os.environ/E2E_TEI_KEY
      rerank_format: tei
      input_cost_per_token: {TEI_RERANK_PRICE}
  - model_name: "llm/*"
    params: {{model: "openai/*", api_base: "{base}", api_key: {key}}}
    model_info: {{models: [llm/alpha, llm/beta]}}
  - model_name: "openai/*"
    params: {{model: "openai/*", api_key: {key}}}
general_settings:
  master_key: os.environ/E2E_MASTER_KEY
"""
    s = Stack(
        tmp_path_factory.mktemp("stack"),
        nats_server.url,
        "e2emedia",
        upstream,
        {"E2E_COHERE_KEY": COHERE_KEY, "E2E_TEI_KEY": TEI_KEY},
        config=config,
    ).start()
    yield s
    s.stop()


def row_of(stack: Stack, request_id: str, operation: str) -> dict:
    row = stack.usage_rows([request_id])[request_id]
    assert (row["operation"], row["status"], row["http_status"]) == (operation, "success", 200), row
    return row


def post(stack: Stack, path: str, body: dict) -> httpx.Response:
    return httpx.post(stack.base_url + path, json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=15)


# ---- images --------------------------------------------------------------------------------------


def test_images_by_count_size_and_quality(stack):
    raw = stack.client().images.with_raw_response.generate(
        model="dall-e-3", prompt="a red fox in snow", n=2, size="1024x1024", quality="hd", response_format="b64_json"
    )
    answer = raw.parse()
    assert len(answer.data) == 2 and all(base64.b64decode(d.b64_json).startswith(b"\x89PNG") for d in answer.data)
    row = row_of(stack, raw.headers["x-request-id"], "images")
    assert (row["images"], row["prompt_tokens"], row["completion_tokens"]) == (2, 0, 0)
    assert row["cost"] == pytest.approx(2 * IMAGE_PRICE, abs=1e-9) and row["cost_known"] in (1, True)

    raw = stack.client().images.with_raw_response.generate(model="dall-e-3", prompt="a fox", response_format="url")
    assert raw.parse().data[0].url.startswith("https://")
    row = row_of(stack, raw.headers["x-request-id"], "images")
    assert row["images"] == 1 and row["cost"] == pytest.approx(IMAGE_PRICE, abs=1e-9)


def test_token_billed_images_are_metered_by_their_tokens(stack):
    raw = stack.client().images.with_raw_response.generate(model="gpt-image-1", prompt="a red fox in snow", n=2, quality="low")
    answer = raw.parse()
    assert len(answer.data) == 2 and answer.usage.output_tokens == 2 * 272
    row = row_of(stack, raw.headers["x-request-id"], "images")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (5, 544)  # 5 prompt words, 272 per low image
    expected = 5 * GPT_IMAGE_PRICES[0] + 544 * GPT_IMAGE_PRICES[1]
    assert row["cost"] == pytest.approx(expected, abs=1e-9) and row["cost_known"] in (1, True)


def test_azure_image_generation(stack, upstream):
    raw = stack.client().images.with_raw_response.generate(model="azure-images", prompt="a fox", n=1, size="1024x1024")
    assert len(raw.parse().data) == 1
    assert upstream.stats()["last_request"]["model"] == "my-dalle-3"  # the Azure deployment, from the URL
    row = row_of(stack, raw.headers["x-request-id"], "images")
    assert row["provider"] == "azure" and row["images"] == 1 and row["cost"] == pytest.approx(AZURE_IMAGE_PRICE, abs=1e-9)


# ---- moderations ---------------------------------------------------------------------------------


def test_moderations_are_metered_at_no_cost(stack):
    raw = stack.client().moderations.with_raw_response.create(
        model="omni-moderation-latest", input=["hello there", "fake-flag me"]
    )
    answer = raw.parse()
    assert [r.flagged for r in answer.results] == [False, True]
    row = row_of(stack, raw.headers["x-request-id"], "moderation")
    # no usage from the provider: the input's 23 characters at 4 a token
    assert (row["prompt_tokens"], row["usage_source"]) == (6, "estimated")
    assert row["cost"] == 0 and row["cost_known"] in (1, True)


# ---- rerank ----------------------------------------------------------------------------------------


def test_cohere_sdk_rerank_metered_in_search_units(stack, cohere_fake):
    client = cohere.ClientV2(api_key=MASTER_KEY, base_url=stack.base_url)
    raw = client.with_raw_response.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS, top_n=2)
    answer = raw.data
    assert [r.index for r in answer.results] == [0, 2]  # all three query words, then two of three
    assert answer.results[0].relevance_score == 1.0
    assert answer.meta.billed_units.search_units == 1
    assert cohere_fake.stats()["last_request"]["model"] == "rerank-v3.5"
    row = row_of(stack, raw.headers["x-request-id"], "rerank")
    assert (row["provider"], row["search_units"], row["prompt_tokens"]) == ("cohere", 1, 0)
    assert row["cost"] == pytest.approx(SEARCH_UNIT_PRICE, abs=1e-9) and row["cost_known"] in (1, True)


def test_cohere_v1_sdk_with_document_objects_and_returned_documents(stack, cohere_fake):
    client = cohere.Client(api_key=MASTER_KEY, base_url=stack.base_url)
    answer = client.rerank(model="rerank-v3.5", query=QUERY, documents=[{"text": d} for d in DOCUMENTS], return_documents=True)
    assert [r.index for r in answer.results] == [0, 2, 1]
    assert answer.results[0].document.text == DOCUMENTS[0]
    sent = cohere_fake.stats()["last_request"]
    assert sent["documents"] == DOCUMENTS and "return_documents" not in sent  # v2 takes strings only


def test_vllm_style_rerank_server_metered_in_tokens(stack, upstream):
    resp = post(stack, "/v1/rerank", {"model": "bge-reranker", "query": QUERY, "documents": DOCUMENTS, "return_documents": True})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert [r["index"] for r in answer["results"]] == [0, 2, 1]
    assert answer["results"][1]["document"] == {"text": DOCUMENTS[2]}
    tokens = sum(len(d.split()) + 3 for d in DOCUMENTS)  # every document with the query's 3 words
    assert answer["meta"]["billed_units"] == {"input_tokens": tokens}
    assert upstream.stats()["last_request"]["model"] == "BAAI/bge-reranker-v2-m3"
    row = row_of(stack, resp.headers["x-request-id"], "rerank")
    assert (row["prompt_tokens"], row["search_units"], row["usage_source"]) == (tokens, 0, "provider")
    assert row["cost"] == pytest.approx(tokens * VLLM_RERANK_PRICE, abs=1e-9)


def test_tei_rerank_estimated_in_tokens(stack, tei_fake):
    resp = post(stack, "/rerank", {"model": "tei-reranker", "query": QUERY, "documents": DOCUMENTS, "top_n": 1})
    assert resp.status_code == 200, resp.text
    assert [r["index"] for r in resp.json()["results"]] == [0]
    assert tei_fake.stats()["last_request"]["texts"] == DOCUMENTS
    chars = sum(len(QUERY) + len(d) for d in DOCUMENTS)
    row = row_of(stack, resp.headers["x-request-id"], "rerank")
    assert (row["prompt_tokens"], row["usage_source"]) == ((chars + 3) // 4, "estimated")
    assert row["cost"] == pytest.approx(row["prompt_tokens"] * TEI_RERANK_PRICE, abs=1e-9)


# ---- the models list -----------------------------------------------------------------------------


def test_models_list_shows_wildcard_groups_models_with_a_created_time(stack):
    listed = {m.id: m for m in stack.client().models.list()}
    assert {"dall-e-3", "rerank-v3.5", "llm/alpha", "llm/beta", "openai/gpt-4o"} <= set(listed)
    assert all(m.created > 1_700_000_000 for m in listed.values())
    assert listed["llm/alpha"].owned_by == "openai" and listed["rerank-v3.5"].owned_by == "cohere"
    assert not any(name.startswith("llm/") and name not in ("llm/alpha", "llm/beta") for name in listed)


def test_a_key_sees_only_the_models_it_may_use(stack):
    key = post(stack, "/key/generate", {"models": ["llm/*"]}).json()["key"]
    resp = httpx.get(f"{stack.base_url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert sorted(m["id"] for m in resp.json()["data"]) == ["llm/alpha", "llm/beta"]


# ---- budgets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "each"),
    [
        ("/v1/images/generations", {"model": "dall-e-3", "prompt": "a fox", "n": 1}, IMAGE_PRICE),
        ("/v2/rerank", {"model": "rerank-v3.5", "query": QUERY, "documents": DOCUMENTS}, SEARCH_UNIT_PRICE),
    ],
    ids=["images", "rerank"],
)
def test_a_budget_pays_for_whole_units_and_no_more(stack, path, body, each):
    """Units are reserved in full before the call: with a budget for two and a half, two calls
    are served and the third is refused before it reaches the upstream."""
    key = post(stack, "/key/generate", {"max_budget": each * 2.5}).json()["key"]
    statuses = []
    for _ in range(3):
        resp = httpx.post(stack.base_url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=15)
        statuses.append(resp.status_code)
        last = resp
    assert statuses == [200, 200, 429] and last.json()["error"]["code"] == "budget_exceeded", last.text

    def spend() -> float:
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        return httpx.get(f"{stack.base_url}/key/info", params={"key": key}, headers=auth, timeout=10).json()["info"]["spend"]

    eventually_sync(lambda: spend() == pytest.approx(2 * each, abs=1e-9), "the two calls' spend settled", timeout=20)


# ---- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/images/generations", {"model": "dall-e-3"}, "prompt"),
        ("/v1/images/generations", {"model": "dall-e-3", "prompt": "x", "n": 11}, "n"),
        ("/v1/images/generations", {"model": "dall-e-3", "prompt": "x", "size": "7x7"}, "size"),
        ("/v1/images/generations", {"model": "dall-e-3", "prompt": "x", "response_format": "gif"}, "response_format"),
        ("/v1/images/generations", {"model": "gpt-image-1", "prompt": "x", "stream": True}, "stream"),
        ("/v1/moderations", {"model": "omni-moderation-latest"}, "input"),
        ("/v1/moderations", {"model": "omni-moderation-latest", "input": []}, "input"),
        ("/v1/moderations", {"input": [{"type": "text"}]}, "input[0].text"),
        ("/v1/rerank", {"model": "rerank-v3.5", "documents": ["a"]}, "query"),
        ("/v2/rerank", {"model": "rerank-v3.5", "query": "q", "documents": []}, "documents"),
        ("/v2/rerank", {"model": "rerank-v3.5", "query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
        ("/v1/rerank", {"model": "rerank-v3.5", "query": "q", "documents": [{"title": "a"}]}, "documents[0]"),
        ("/rerank", {"query": "q", "documents": ["a"]}, "model"),
    ],
)
def test_bad_bodies_are_400_naming_the_field_and_only_a_refused_row(stack, upstream, cohere_fake, path, body, param):
    before = upstream.stats()["requests"] + cohere_fake.stats()["requests"]
    resp = post(stack, path, body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    request_id = resp.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["http_status"], row["cost"]) == ("refused", 400, 0)
    assert upstream.stats()["requests"] + cohere_fake.stats()["requests"] == before


def test_an_operation_the_provider_does_not_offer_is_a_400(stack):
    resp = post(stack, "/v1/moderations", {"model": "rerank-v3.5", "input": "hello"})
    assert resp.status_code == 400 and "does not offer moderations" in resp.json()["error"]["message"], resp.text
