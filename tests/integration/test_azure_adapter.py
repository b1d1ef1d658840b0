"""The Azure OpenAI adapter (and the OpenAI family's native hooks it shares) against the fake
OpenAI upstream's Azure routes (bench/fake_openai.py), over the worker's real upstream client."""

from __future__ import annotations

import datetime

import msgspec
import pytest

from bench.fake_openai import start_fake
from llmgw.config import Deployment, Secret
from llmgw.contracts import NativeCall, Operation, UpstreamRequest
from tests.integration.adapter_support import upstream_request
from workers.http_client import UpstreamClient
from workers.providers.answers import NativeHead
from workers.providers.azure import AzureOpenAI
from workers.providers.errors import UpstreamError
from workers.providers.openai_family import OpenAIFamily, OpenAIUsageReader
from workers.usage import Usage

pytestmark = pytest.mark.integration

KEY = "azure-integration-secret-4242"
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
async def fake():
    handle, _ = await start_fake(api_key=KEY)
    yield handle
    await handle.stop()


@pytest.fixture(scope="module")
async def client():
    c = UpstreamClient(16)
    yield c
    await c.aclose()


@pytest.fixture(scope="module")
def provider(client):
    return AzureOpenAI(client, 30.0, 5.0)


def root(fake) -> str:
    return f"http://{fake.host}:{fake.port}"


def deployment(fake, key: str = KEY, api_version: str | None = "2024-10-21") -> Deployment:
    """A wildcard deployment: the Azure deployment name comes from the requested model."""
    return Deployment(
        id="azure/*",
        model_name="azure/*",
        provider="azure",
        upstream_model="*",
        api_base=root(fake),
        api_key=Secret(key),
        api_version=api_version,
    )


def request(
    body: dict,
    *,
    stream: bool = False,
    include_usage: bool = False,
    operation: str = Operation.CHAT,
    native: NativeCall | None = None,
    system_prompts=(),
) -> UpstreamRequest:
    return upstream_request(
        body,
        "azure/gpt-4o-east",
        "azure/*",
        stream=stream,
        include_usage=include_usage,
        operation=operation,
        native=native,
        system_prompts=system_prompts,
    )


def test_url_has_the_deployment_and_api_version_and_the_key_goes_in_api_key(provider, fake):
    body = msgspec.json.encode({"model": "gpt-4o-east", "messages": HELLO})
    built = provider._request(deployment(fake), request({}), "chat/completions", body, "gpt-4o-east")
    assert str(built.url) == f"{root(fake)}/openai/deployments/gpt-4o-east/chat/completions?api-version=2024-10-21"
    assert built.headers["api-key"] == KEY and "authorization" not in built.headers
    other = provider._request(
        deployment(fake, api_version=None), request({}), "embeddings", msgspec.json.encode({"model": "emb-1"}), "emb-1"
    )
    assert str(other.url) == f"{root(fake)}/openai/deployments/emb-1/embeddings?api-version=2024-10-21"
    # an unquoted `api_version: 2025-01-01` in the YAML config arrives as a date
    dated = provider._request(
        deployment(fake, api_version=datetime.date(2025, 1, 1)),
        request({}),
        "embeddings",
        msgspec.json.encode({"model": "emb-2"}),
        "emb-2",
    )
    assert str(dated.url).endswith("/openai/deployments/emb-2/embeddings?api-version=2025-01-01")


async def test_chat_reaches_the_deployment_named_by_the_model(provider, fake):
    completion = await provider.chat(
        deployment(fake),
        request({"model": "azure/gpt-4o-east", "messages": HELLO, "max_tokens": 3}, system_prompts=["Be brief."]),
        "gpt-4o-east",
    )
    out = msgspec.json.decode(completion.body)
    # the fake answers with the deployment name from the URL path as the model
    assert out["model"] == "gpt-4o-east" and out["choices"][0]["message"]["content"] == "w0 w1 w2"
    # 2 words + 1 message, and the policy prompt's 2 words + 1 message
    assert completion.usage == Usage(prompt_tokens=6, completion_tokens=3)
    completion = await provider.chat(deployment(fake), request({"model": "x", "messages": HELLO}), "gpt-4o-west")
    assert msgspec.json.decode(completion.body)["model"] == "gpt-4o-west"


async def test_stream_with_usage(provider, fake):
    chunks, usages = [], []
    body = {
        "model": "azure/gpt-4o-east",
        "messages": HELLO,
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async for item in provider.chat_stream(deployment(fake), request(body, stream=True, include_usage=True), "gpt-4o-east"):
        (usages if isinstance(item, Usage) else chunks).append(item)
    decoded = [msgspec.json.decode(c) for c in chunks]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in decoded if c["choices"]) == "w0 w1 w2 w3"
    assert decoded[-1]["choices"] == [] and decoded[-1]["usage"]["completion_tokens"] == 4
    assert usages == [Usage(prompt_tokens=3, completion_tokens=4)]


async def test_embeddings(provider, fake):
    body = {"model": "azure/emb", "input": ["one two", "three"]}
    completion = await provider.embeddings(
        deployment(fake), request(body, operation=Operation.EMBEDDINGS), "text-embedding-3-small"
    )
    out = msgspec.json.decode(completion.body)
    assert out["object"] == "list" and len(out["data"]) == 2 and out["model"] == "text-embedding-3-small"
    assert completion.usage == Usage(prompt_tokens=3)


@pytest.mark.parametrize(
    ("model", "status"), [("fake-error-400", 400), ("fake-error-429", 429), ("fake-error-500", 502), ("fake-error-404", 404)]
)
async def test_errors(provider, fake, model, status):
    with pytest.raises(UpstreamError) as info:
        await provider.chat(deployment(fake), request({"model": "x", "messages": HELLO}), model)
    assert info.value.status == status
    if status == 429:
        assert info.value.retry_after == 1.0


async def test_wrong_key_is_a_gateway_problem_and_never_echoed(provider, fake):
    wrong = "azure-wrong-key-99999999"
    with pytest.raises(UpstreamError) as info:
        await provider.chat(deployment(fake, key=wrong), request({"model": "x", "messages": HELLO}), "gpt-4o-east")
    assert info.value.status == 502 and wrong not in info.value.message and KEY not in info.value.message


async def test_stream_cut_off(provider, fake):
    with pytest.raises(UpstreamError) as info:
        async for _ in provider.chat_stream(
            deployment(fake), request({"model": "x", "messages": HELLO}, stream=True), "fake-stream-fail"
        ):
            pass
    assert info.value.status == 502


# ---- native passthrough: /azure/openai/deployments/... and /openai/v1/... -----------------------


async def relay(provider, dep: Deployment, call: NativeCall, body: dict, model: str):
    items = [
        i
        async for i in provider.native(
            dep, request(body, stream=bool(body.get("stream")), native=call, operation=Operation.NATIVE), model
        )
    ]
    assert isinstance(items[0], NativeHead)
    return items[0], b"".join(i for i in items if isinstance(i, bytes)), [i for i in items if isinstance(i, Usage)]


async def test_azure_native_call(provider, fake):
    call = NativeCall(
        method="POST",
        path="/openai/deployments/gpt-4o-east/chat/completions",
        query="api-version=2024-10-21",
        headers=[("content-type", "application/json")],
    )
    head, data, usages = await relay(provider, deployment(fake), call, {"messages": HELLO, "max_tokens": 2}, "gpt-4o-east")
    assert head.status == 200 and msgspec.json.decode(data)["choices"][0]["message"]["content"] == "w0 w1"
    assert usages == [Usage(prompt_tokens=3, completion_tokens=2)]
    body = {"messages": HELLO, "max_tokens": 2, "stream": True, "stream_options": {"include_usage": True}}
    head, data, usages = await relay(provider, deployment(fake), call, body, "gpt-4o-east")
    assert head.stream and data.rstrip().endswith(b"data: [DONE]") and usages == [Usage(prompt_tokens=3, completion_tokens=2)]


async def test_azure_native_wrong_key_is_502(provider, fake):
    call = NativeCall(method="POST", path="/openai/deployments/gpt-4o-east/chat/completions", query="api-version=2024-10-21")
    with pytest.raises(UpstreamError) as info:
        await relay(provider, deployment(fake, key="azure-wrong-key-1"), call, {"messages": HELLO}, "gpt-4o-east")
    assert info.value.status == 502


async def test_openai_native_hooks(client, fake):
    openai = OpenAIFamily(client, 30.0, 5.0)
    dep = Deployment(
        id="o/0", model_name="gpt", provider="openai", upstream_model="gpt-4o", api_base=fake.base_url, api_key=Secret(KEY)
    )
    assert openai.native_root(dep, "gpt-4o") == root(fake)
    call = NativeCall(method="POST", path="/v1/chat/completions", headers=[("content-type", "application/json")])
    head, data, usages = await relay(openai, dep, call, {"model": "gpt-4o", "messages": HELLO, "max_tokens": 1}, "gpt-4o")
    assert head.status == 200 and msgspec.json.decode(data)["model"] == "gpt-4o"
    assert usages == [Usage(prompt_tokens=3, completion_tokens=1)]


def test_openai_usage_reader():
    reader = OpenAIUsageReader()
    for data in (b'{"choices":[{"delta":{"content":"x"}}]}', b"[DONE]", b'{"usage": broken'):
        reader.event(data)
    assert reader.usage is None
    reader.event(b'{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1}}}')
    assert reader.usage == Usage(prompt_tokens=4, completion_tokens=2, cached_tokens=1)
    reader = OpenAIUsageReader()
    reader.body(b'{"object":"list","usage":{"prompt_tokens":5,"total_tokens":5}}')
    assert reader.usage == Usage(prompt_tokens=5)
