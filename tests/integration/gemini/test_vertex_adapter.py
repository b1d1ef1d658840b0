"""The Vertex AI adapter against the fake Google upstream (bench/fake_gemini.py), in-process,
through a real UpstreamClient: service-account tokens fetched, reused and refreshed, chat, streams,
errors, embeddings and the native passthrough."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from llmgw.contracts import Operation
from tests.integration.gemini.support import (
    HELLO,
    collect,
    native_items,
    service_account,
    text_of,
    upstream_request,
    vertex_deployment,
)
from workers.providers.base import UpstreamError
from workers.providers.gemini import VertexAI
from workers.usage import Usage

pytestmark = pytest.mark.integration


async def test_vertex_chat_fetches_one_token_and_reuses_it(fake, client, sa_path):
    provider, deployment = VertexAI(client, 30, 5), vertex_deployment(fake, str(sa_path))
    before = fake.stats.tokens_issued
    for _ in range(3):
        completion = await provider.chat(
            deployment, upstream_request({"model": "vx", "messages": HELLO, "max_tokens": 2}), "gemini-1.5-pro"
        )
        assert json.loads(completion.body)["choices"][0]["message"]["content"] == "w0 w1"
        assert completion.usage == Usage(prompt_tokens=4, completion_tokens=2)
    assert fake.stats.tokens_issued - before == 1
    assert fake.stats.last_request["path"] == (
        "/v1/projects/my-project/locations/europe-west4/publishers/google/models/gemini-1.5-pro:generateContent"
    )


async def test_vertex_refreshes_once_for_a_burst(fake, client, sa_key):
    # Credentials as JSON text, and the project taken from the key file.
    deployment = vertex_deployment(fake, service_account(sa_key, f"{fake.root_url}/token", "burst-project"), vertex_project=None)
    provider = VertexAI(client, 30, 5)
    before = fake.stats.token_requests
    results = await asyncio.gather(
        *(provider.chat(deployment, upstream_request({"model": "vx", "messages": HELLO}), "gemini-1.5-pro") for _ in range(8))
    )
    assert all(r.usage == Usage(prompt_tokens=4, completion_tokens=8) for r in results)
    assert fake.stats.token_requests - before == 1
    assert fake.stats.last_request["path"].startswith("/v1/projects/burst-project/locations/europe-west4/")


async def test_vertex_refuses_a_key_the_account_does_not_have(fake, client, tmp_path):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "other.json"
    path.write_text(service_account(stranger, f"{fake.root_url}/token"))
    failures = fake.stats.token_failures
    with pytest.raises(UpstreamError) as info:
        await VertexAI(client, 30, 5).chat(
            vertex_deployment(fake, str(path)), upstream_request({"model": "vx", "messages": HELLO}), "gemini-1.5-pro"
        )
    assert info.value.status == 502 and "Invalid JWT Signature" in info.value.message
    assert "PRIVATE KEY" not in info.value.message
    assert fake.stats.token_failures == failures + 1


async def test_vertex_fetches_a_new_token_after_one_is_refused(fake, client, sa_path):
    provider, deployment = VertexAI(client, 30, 5), vertex_deployment(fake, str(sa_path))
    request = upstream_request({"model": "vx", "messages": HELLO})
    await provider.chat(deployment, request, "gemini-1.5-pro")
    async with httpx.AsyncClient() as http:  # the upstream revokes every token it issued
        assert (await http.post(f"{fake.root_url}/_fake/revoke-tokens")).status_code == 200
    with pytest.raises(UpstreamError) as info:
        await provider.chat(deployment, request, "gemini-1.5-pro")
    assert info.value.status == 502 and "refused the credential" in info.value.message
    before = fake.stats.tokens_issued
    assert (await provider.chat(deployment, request, "gemini-1.5-pro")).usage is not None
    assert fake.stats.tokens_issued == before + 1


async def test_vertex_stream(fake, client, sa_path):
    request = upstream_request({"model": "vx", "messages": HELLO, "max_tokens": 3}, stream=True, include_usage=True)
    chunks, usages = await collect(
        VertexAI(client, 30, 5).chat_stream(vertex_deployment(fake, str(sa_path)), request, "gemini-1.5-pro")
    )
    assert text_of(chunks) == "w0 w1 w2" and usages == [Usage(prompt_tokens=4, completion_tokens=3)]
    assert chunks[-1]["usage"]["prompt_tokens"] == 4
    assert fake.stats.last_request["path"].endswith(":streamGenerateContent") and fake.stats.last_request["query"] == "alt=sse"


async def test_vertex_errors(fake, client, sa_path):
    provider = VertexAI(client, 30, 5)
    with pytest.raises(UpstreamError) as info:
        await provider.chat(
            vertex_deployment(fake, str(sa_path), "fake-error-429"),
            upstream_request({"model": "vx", "messages": HELLO}),
            "fake-error-429",
        )
    assert info.value.status == 429 and info.value.retry_after == 2.0


async def test_vertex_embeddings_use_predict_with_token_counts(fake, client, sa_path):
    body = {"model": "vx", "input": ["one two three", "four"]}
    completion = await VertexAI(client, 30, 5).embeddings(
        vertex_deployment(fake, str(sa_path), "text-embedding-005"),
        upstream_request(body, operation=Operation.EMBEDDINGS),
        "text-embedding-005",
    )
    listed = json.loads(completion.body)
    assert len(listed["data"]) == 2 and len(listed["data"][0]["embedding"]) == 8
    assert listed["usage"] == {"prompt_tokens": 4, "total_tokens": 4} and completion.usage == Usage(prompt_tokens=4)
    assert fake.stats.last_request["path"].endswith("/models/text-embedding-005:predict")
    assert fake.stats.last_request["body"] == {"instances": [{"content": "one two three"}, {"content": "four"}]}


async def test_vertex_native_call_gets_a_token_and_the_deployments_project(fake, client, sa_path):
    provider = VertexAI(client, 30, 5)
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello there friend"}]}]}
    path = "/v1/projects/client-project/locations/us-central1/publishers/google/models/gemini-1.5-pro:generateContent"
    head, data, usages = await native_items(
        provider, vertex_deployment(fake, str(sa_path)), path, body, upstream_model="gemini-1.5-pro"
    )
    assert head.status == 200 and json.loads(data)["usageMetadata"]["candidatesTokenCount"] == 8
    assert usages == [Usage(prompt_tokens=4, completion_tokens=8)]
    assert fake.stats.last_request["path"] == (
        "/v1/projects/my-project/locations/europe-west4/publishers/google/models/gemini-1.5-pro:generateContent"
    )


async def test_vertex_without_usable_credentials_is_a_500(fake, client):
    deployment = vertex_deployment(fake, "/no/such/file.json")
    with pytest.raises(UpstreamError) as info:
        await VertexAI(client, 30, 5).chat(deployment, upstream_request({"model": "vx", "messages": HELLO}), "gemini-1.5-pro")
    assert info.value.status == 500 and "/no/such/file.json" not in info.value.message
