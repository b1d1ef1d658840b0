"""The Gemini and Vertex AI adapters against the fake Google upstream (bench/fake_gemini.py),
in-process, through a real UpstreamClient: chat, streams, tool calls, errors, embeddings,
service-account tokens and the native passthrough hooks."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.fake_gemini import FakeServerHandle, start_fake
from llmgw.config import Deployment, Secret
from llmgw.contracts import NativeCall, Operation, UpstreamRequest
from tests.integration.adapter_support import collect as collect_stream
from tests.integration.adapter_support import upstream_request as shared_request
from workers.http_client import UpstreamClient
from workers.providers.answers import NativeHead
from workers.providers.errors import UpstreamError
from workers.providers.gemini import Gemini, VertexAI
from workers.usage import Usage

pytestmark = pytest.mark.integration

KEY = "AIzaSy-fake-gemini-key-0042"
HELLO = [{"role": "user", "content": "Hello there friend"}]  # 3 words + 1 content = 4 prompt tokens
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        },
    }
]


def _private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def service_account(key: rsa.RSAPrivateKey, token_uri: str, project: str = "sa-project") -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": "k1",
            "private_key": _private_pem(key),
            "client_email": f"llmgw@{project}.iam.gserviceaccount.com",
            "client_id": "1",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        }
    )


@pytest.fixture(scope="module")
def sa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
async def fake(sa_key):
    handle, _ = await start_fake(api_key=KEY, vertex_public_keys=[_public_pem(sa_key)])
    yield handle
    await handle.stop()


@pytest.fixture(scope="module")
async def client():
    c = UpstreamClient(16)
    yield c
    await c.aclose()


@pytest.fixture(scope="module")
def sa_path(sa_key, fake: FakeServerHandle, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sa") / "service-account.json"
    path.write_text(service_account(sa_key, f"{fake.root_url}/token"))
    return path


def gemini_deployment(fake: FakeServerHandle, model: str = "gemini-1.5-flash", key: str = KEY) -> Deployment:
    return Deployment(
        id="gem/0", model_name="gem", provider="gemini", upstream_model=model, api_base=fake.root_url, api_key=Secret(key)
    )


def vertex_deployment(fake: FakeServerHandle, credentials: str, model: str = "gemini-1.5-pro", **params) -> Deployment:
    extra = {"vertex_project": "my-project", "vertex_location": "europe-west4", **params}
    extra = {k: v for k, v in extra.items() if v is not None}
    extra["vertex_credentials"] = Secret(credentials)
    return Deployment(
        id="vx/0",
        model_name="vx",
        provider="vertex_ai",
        upstream_model=model,
        api_base=fake.root_url,
        extra=tuple(sorted(extra.items())),
    )


def upstream_request(body: dict | bytes, **kwargs) -> UpstreamRequest:
    return shared_request(body, "gem", "gem/0", **kwargs)


async def collect(stream) -> tuple[list[dict], list[Usage]]:
    return await collect_stream(stream)


def text_of(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


# ---- Gemini: chat -----------------------------------------------------------------------


async def test_chat_answers_with_exact_usage_and_policy_prompts_first(fake, client):
    provider = Gemini(client, 30, 5)
    body = {"model": "gem", "messages": [{"role": "system", "content": "Be kind."}, *HELLO], "max_tokens": 5}
    completion = await provider.chat(
        gemini_deployment(fake), upstream_request(body, system_prompts=["Policy says hi."]), "gemini-1.5-flash"
    )
    answer = json.loads(completion.body)
    assert answer["object"] == "chat.completion" and answer["model"] == "gemini-1.5-flash"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "w0 w1 w2 w3 w4"}
    assert answer["choices"][0]["finish_reason"] == "length"
    # prompt: "Policy says hi." 3 + "Be kind." 2 + "Hello there friend" 3 + 1 content
    assert completion.usage == Usage(prompt_tokens=9, completion_tokens=5)
    assert answer["usage"]["total_tokens"] == 14
    sent = fake.stats.last_request
    assert sent["path"] == "/v1beta/models/gemini-1.5-flash:generateContent"
    assert sent["body"]["systemInstruction"] == {"parts": [{"text": "Policy says hi."}, {"text": "Be kind."}]}
    assert sent["body"]["generationConfig"] == {"maxOutputTokens": 5}


async def test_thinking_and_cached_tokens_reach_usage(fake, client):
    body = {"model": "gem", "messages": [{"role": "user", "content": "think:6 cached:2 go"}]}
    completion = await Gemini(client, 30, 5).chat(gemini_deployment(fake), upstream_request(body), "gemini-2.5-pro")
    assert completion.usage == Usage(prompt_tokens=4, completion_tokens=8 + 6, cached_tokens=2, reasoning_tokens=6)


async def test_stream_chunks_in_order_then_usage_then_usage_chunk(fake, client):
    provider = Gemini(client, 30, 5)
    request = upstream_request({"model": "gem", "messages": HELLO, "max_tokens": 4}, stream=True, include_usage=True)
    items = [item async for item in provider.chat_stream(gemini_deployment(fake), request, "gemini-1.5-flash")]
    usage_at = next(i for i, item in enumerate(items) if isinstance(item, Usage))
    assert items[usage_at] == Usage(prompt_tokens=4, completion_tokens=4)
    assert usage_at == len(items) - 2  # the Usage item, then the usage-only chunk
    chunks = [json.loads(item) for item in items if isinstance(item, bytes)]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert text_of(chunks) == "w0 w1 w2 w3"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]][-1] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    assert fake.stats.last_request["query"] == "alt=sse"


async def test_stream_without_include_usage_has_no_usage_chunk(fake, client):
    request = upstream_request({"model": "gem", "messages": HELLO}, stream=True)
    chunks, usages = await collect(Gemini(client, 30, 5).chat_stream(gemini_deployment(fake), request, "gemini-1.5-flash"))
    assert all(c["choices"] for c in chunks) and text_of(chunks) == " ".join(f"w{i}" for i in range(8))
    assert usages == [Usage(prompt_tokens=4, completion_tokens=8)]


async def test_tool_call_round_trip(fake, client):
    provider, deployment = Gemini(client, 30, 5), gemini_deployment(fake)
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = await provider.chat(
        deployment, upstream_request({"model": "gem", "messages": ask, "tools": WEATHER_TOOLS}), "gemini-1.5-flash"
    )
    choice = json.loads(first.body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"location": "Paris"}
    assert fake.stats.last_request["body"]["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    follow_up = [*ask, choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'}]
    second = await provider.chat(
        deployment, upstream_request({"model": "gem", "messages": follow_up, "tools": WEATHER_TOOLS}), "gemini-1.5-flash"
    )
    assert json.loads(second.body)["choices"][0]["message"]["content"].startswith("w0")
    sent = fake.stats.last_request["body"]["contents"]
    assert sent[1] == {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]}
    assert sent[2] == {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]}


async def test_streamed_tool_call(fake, client):
    body = {
        "model": "gem",
        "messages": [{"role": "user", "content": "weather in Rome"}],
        "tools": WEATHER_TOOLS,
        "tool_choice": "auto",
    }
    chunks, usages = await collect(
        Gemini(client, 30, 5).chat_stream(gemini_deployment(fake), upstream_request(body, stream=True), "gemini-1.5-flash")
    )
    calls = [t for c in chunks for t in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert len(calls) == 1 and calls[0]["index"] == 0 and calls[0]["id"].startswith("call_")
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"location":"Paris"}'}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert usages == [Usage(prompt_tokens=4, completion_tokens=5)]


# ---- Gemini: errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "status", "expected"),
    [
        ("fake-error-429", 429, "You exceeded your current quota"),
        ("fake-error-500", 502, "An internal error has occurred"),
        ("fake-error-503", 503, "The model is overloaded"),
        ("fake-error-400", 400, "Request contains an invalid argument."),
        ("fake-error-404", 404, "models/fake-error-404 is not found"),
        ("fake-error-401", 502, "refused the credential"),
    ],
)
async def test_upstream_errors(fake, client, model, status, expected):
    with pytest.raises(UpstreamError) as info:
        await Gemini(client, 30, 5).chat(
            gemini_deployment(fake, model), upstream_request({"model": "gem", "messages": HELLO}), model
        )
    assert info.value.status == status and expected in info.value.message
    if status == 429:
        assert info.value.retry_after == 2.0  # from the RetryInfo detail


async def test_a_wrong_key_is_a_502_that_does_not_show_the_key(fake, client):
    wrong = "AIzaSy-wrong-key-98765"
    for call in ("chat", "chat_stream"):
        provider = Gemini(client, 30, 5)
        request = upstream_request({"model": "gem", "messages": HELLO}, stream=call == "chat_stream")
        with pytest.raises(UpstreamError) as info:
            if call == "chat":
                await provider.chat(gemini_deployment(fake, key=wrong), request, "gemini-1.5-flash")
            else:
                await collect(provider.chat_stream(gemini_deployment(fake, key=wrong), request, "gemini-1.5-flash"))
        assert info.value.status == 502 and info.value.code == "upstream_error"
        assert wrong not in info.value.message and KEY not in info.value.message


@pytest.mark.parametrize("model", ["fake-stream-fail", "fake-stream-truncated"])
async def test_a_stream_cut_off_is_a_502(fake, client, model):
    got: list[dict] = []
    with pytest.raises(UpstreamError) as info:
        async for item in Gemini(client, 30, 5).chat_stream(
            gemini_deployment(fake, model), upstream_request({"model": "gem", "messages": HELLO}, stream=True), model
        ):
            if isinstance(item, bytes):
                got.append(json.loads(item))
    assert info.value.status == 502
    assert text_of(got) == "w0 w1 w2"  # what came before the cut was relayed


# ---- Gemini: embeddings -----------------------------------------------------------------


async def test_embeddings_as_floats_and_base64(fake, client):
    provider, deployment = Gemini(client, 30, 5), gemini_deployment(fake, "text-embedding-004")
    body = {"model": "emb", "input": ["the quick fox", "jumps"], "dimensions": 4}
    floats = await provider.embeddings(deployment, upstream_request(body, operation=Operation.EMBEDDINGS), "text-embedding-004")
    listed = json.loads(floats.body)
    assert listed["object"] == "list" and [d["index"] for d in listed["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 4 for d in listed["data"])
    assert floats.usage is None  # batchEmbedContents reports no token counts
    encoded = await provider.embeddings(
        deployment,
        upstream_request({**body, "encoding_format": "base64"}, operation=Operation.EMBEDDINGS),
        "text-embedding-004",
    )
    vector = struct.unpack("<4f", base64.b64decode(json.loads(encoded.body)["data"][0]["embedding"]))
    assert vector == pytest.approx(listed["data"][0]["embedding"], abs=1e-6)
    sent = fake.stats.last_request
    assert sent["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent["body"]["requests"][1] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "jumps"}]},
        "outputDimensionality": 4,
    }


# ---- Gemini: native passthrough ---------------------------------------------------------


async def native_items(
    provider,
    deployment,
    path: str,
    body: dict,
    *,
    stream: bool = False,
    query: str = "",
    upstream_model: str = "gemini-1.5-flash",
):
    call = NativeCall(method="POST", path=path, query=query, headers=[("content-type", "application/json")])
    request = upstream_request(body, stream=stream, operation=Operation.NATIVE, native=call)
    head, data, usages = None, b"", []
    async for item in provider.native(deployment, request, upstream_model):
        if isinstance(item, NativeHead):
            head = item
        elif isinstance(item, Usage):
            usages.append(item)
        else:
            data += item
    return head, data, usages


async def test_native_generate_content_is_relayed_and_metered(fake, client):
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Hello there friend"}]}],
        "generationConfig": {"maxOutputTokens": 3},
    }
    head, data, usages = await native_items(
        Gemini(client, 30, 5), gemini_deployment(fake), "/v1beta/models/my-group:generateContent", body
    )
    assert head.status == 200 and not head.stream
    answer = json.loads(data)
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "w0 w1 w2"}]
    assert answer["usageMetadata"]["promptTokenCount"] == 4
    assert usages == [Usage(prompt_tokens=4, completion_tokens=3)]
    assert fake.stats.last_request["path"] == "/v1beta/models/gemini-1.5-flash:generateContent"  # the deployment's model


async def test_native_streams_sse_and_json_array_are_metered(fake, client):
    provider, deployment = Gemini(client, 30, 5), gemini_deployment(fake)
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "generationConfig": {"maxOutputTokens": 2}}
    head, data, usages = await native_items(
        provider, deployment, "/v1beta/models/x:streamGenerateContent", body, stream=True, query="alt=sse"
    )
    assert head.stream and ("content-type", "text/event-stream") in head.headers
    assert data.count(b"data: ") == 2 and data.endswith(b"\r\n\r\n")
    assert usages == [Usage(prompt_tokens=2, completion_tokens=2)]
    head, data, usages = await native_items(provider, deployment, "/v1beta/models/x:streamGenerateContent", body, stream=True)
    assert head.stream and len(json.loads(data)) == 2  # one JSON array
    assert usages == [Usage(prompt_tokens=2, completion_tokens=2)]


# ---- Vertex AI ----------------------------------------------------------------------------


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
