"""The Bedrock adapter against the fake Bedrock runtime (bench/fake_bedrock.py) in-process, with the
worker's real upstream client: every call is SigV4-signed and the fake recomputes the signature."""

from __future__ import annotations

import msgspec
import pytest
import pytest_asyncio

from bench.fake_bedrock import DEFAULT_ACCESS_KEY_ID, start_fake
from llmgw.config import Deployment, Secret
from llmgw.contracts import Operation, UpstreamRequest
from tests.integration.adapter_support import collect as collect_stream
from tests.integration.adapter_support import upstream_request
from workers.http_client import UpstreamClient
from workers.providers.bedrock import Bedrock
from workers.providers.errors import UpstreamError
from workers.usage import Usage

pytestmark = pytest.mark.integration

SECRET = "bedrock-secret-key-xyz-0987654321"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessiontoken"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}


@pytest_asyncio.fixture(scope="module")
async def fake():
    handle, _ = await start_fake(secret_access_key=SECRET)
    yield handle
    await handle.stop()


@pytest_asyncio.fixture(scope="module")
async def fake_with_token():
    handle, _ = await start_fake(secret_access_key=SECRET, region="eu-central-1", session_token=SESSION_TOKEN)
    yield handle
    await handle.stop()


@pytest_asyncio.fixture(scope="module")
async def provider():
    client = UpstreamClient(16)
    yield Bedrock(client, default_timeout=10, connect_timeout=5)
    await client.aclose()


def deployment(
    base: str, secret: str = SECRET, key_id: str = DEFAULT_ACCESS_KEY_ID, region: str = "us-east-1", token: str | None = None
) -> Deployment:
    extra = [("aws_access_key_id", key_id), ("aws_region_name", region), ("aws_secret_access_key", Secret(secret))]
    if token:
        extra.append(("aws_session_token", Secret(token)))
    return Deployment(
        id="bedrock/0", model_name="claude", provider="bedrock", upstream_model=CLAUDE, api_base=base, extra=tuple(sorted(extra))
    )


def request(
    body: dict, stream: bool = False, include_usage: bool = False, system_prompts=(), op=Operation.CHAT
) -> UpstreamRequest:
    return upstream_request(
        body,
        "claude",
        "bedrock/0",
        stream=stream,
        include_usage=include_usage,
        system_prompts=system_prompts,
        operation=op,
        timeout=10,
    )


def chat_body(text: str = "Hello there friend", **extra) -> dict:
    return {"model": "claude", "messages": [{"role": "user", "content": text}], **extra}


async def collect(provider, dep, req, model=CLAUDE) -> tuple[list[dict], list[Usage]]:
    return await collect_stream(provider.chat_stream(dep, req, model))


async def test_chat_completion_with_exact_usage(fake, provider):
    completion = await provider.chat(deployment(fake.base_url), request(chat_body(max_tokens=4)), CLAUDE)
    out = msgspec.json.decode(completion.body)
    assert out["object"] == "chat.completion" and out["model"] == CLAUDE
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "w0 w1 w2 w3"}
    assert out["choices"][0]["finish_reason"] == "length"
    # 3 words + 1 message of prompt; 4 words of answer
    assert completion.usage == Usage(prompt_tokens=4, completion_tokens=4)
    assert out["usage"]["prompt_tokens"] == 4 and out["usage"]["total_tokens"] == 8
    assert fake.app.calls[-1][:2] == (CLAUDE, "converse")


async def test_system_prompts_reach_bedrock_policy_first(fake, provider):
    body = {"model": "claude", "messages": [{"role": "system", "content": "client says"}, {"role": "user", "content": "hi"}]}
    completion = await provider.chat(deployment(fake.base_url), request(body, system_prompts=["policy rule one"]), CLAUDE)
    assert fake.app.calls[-1][2]["system"] == [{"text": "policy rule one"}, {"text": "client says"}]
    assert completion.usage.prompt_tokens == 3 + 2 + 1 + 1  # both system texts are part of the prompt
    assert msgspec.json.decode(completion.body)["choices"][0]["finish_reason"] == "stop"


async def test_cache_reads_and_writes_count_in_the_prompt(fake, provider):
    completion = await provider.chat(deployment(fake.base_url), request(chat_body("a b c d e f cached:3 cachewrite:2")), CLAUDE)
    assert completion.usage == Usage(prompt_tokens=9, completion_tokens=8, cached_tokens=3, cache_write_tokens=2)


async def test_stream_chunks_in_order_with_usage(fake, provider):
    req = request(chat_body(max_tokens=3), stream=True, include_usage=True)
    chunks, usages = await collect(provider, deployment(fake.base_url), req)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "w0 w1 w2"
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish == ["length"]
    assert usages == [Usage(prompt_tokens=4, completion_tokens=3)]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    assert len({c["id"] for c in chunks}) == 1
    assert fake.app.calls[-1][:2] == (CLAUDE, "converse-stream")


async def test_stream_without_include_usage_has_no_usage_chunk(fake, provider):
    chunks, usages = await collect(provider, deployment(fake.base_url), request(chat_body(max_tokens=2), stream=True))
    assert all(c["choices"] for c in chunks)
    assert usages == [Usage(prompt_tokens=4, completion_tokens=2)]


async def test_tool_call_round_trip(fake, provider):
    dep = deployment(fake.base_url)
    ask = chat_body("What is the weather in Paris?", tools=[WEATHER_TOOL], tool_choice="auto")
    completion = await provider.chat(dep, request(ask), CLAUDE)
    sent = fake.app.calls[-1][2]
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert sent["toolConfig"]["toolChoice"] == {"auto": {}}
    choice = msgspec.json.decode(completion.body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and msgspec.json.decode(call["function"]["arguments"]) == {
        "location": "Paris"
    }
    assert call["id"].startswith("tooluse_") and completion.usage.completion_tokens == 10

    answer = {
        **ask,
        "messages": ask["messages"]
        + [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny and 22 C"},
        ],
    }
    completion = await provider.chat(dep, request(answer), CLAUDE)
    sent = fake.app.calls[-1][2]
    tool_use = {"toolUseId": call["id"], "name": "get_weather", "input": {"location": "Paris"}}
    assert sent["messages"][1]["content"] == [{"toolUse": tool_use}]
    assert sent["messages"][2]["content"] == [{"toolResult": {"toolUseId": call["id"], "content": [{"text": "sunny and 22 C"}]}}]
    out = msgspec.json.decode(completion.body)["choices"][0]
    assert out["finish_reason"] == "stop" and out["message"]["content"].startswith("w0 w1")


async def test_streamed_tool_call(fake, provider):
    body = chat_body("weather in Paris please", tools=[WEATHER_TOOL])
    chunks, usages = await collect(provider, deployment(fake.base_url), request(body, stream=True))
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"].startswith("tooluse_") and calls[0]["function"]["name"] == "get_weather"
    assert {tc["index"] for tc in calls} == {0}
    assert msgspec.json.decode("".join(tc["function"]["arguments"] for tc in calls)) == {"location": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert usages == [Usage(prompt_tokens=5, completion_tokens=10)]


async def test_temporary_credentials_sign_the_session_token(fake_with_token, provider):
    dep = deployment(fake_with_token.base_url, region="eu-central-1", token=SESSION_TOKEN)
    completion = await provider.chat(dep, request(chat_body(max_tokens=1)), CLAUDE)
    assert completion.usage == Usage(4, 1)
    wrong = deployment(fake_with_token.base_url, region="eu-central-1", token="another-token-000")
    with pytest.raises(UpstreamError) as info:
        await provider.chat(wrong, request(chat_body()), CLAUDE)
    assert info.value.status == 502 and "another-token-000" not in info.value.message


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [
        ("fake-error-429", 429, "rate_limit_exceeded"),
        ("fake-error-500", 502, "upstream_error"),
        ("fake-error-400", 400, "invalid_request_error"),
        ("fake-error-403", 502, "upstream_error"),
        ("fake-error-503", 503, "service_unavailable"),
    ],
)
async def test_errors(fake, provider, model, status, code):
    with pytest.raises(UpstreamError) as info:
        await provider.chat(deployment(fake.base_url), request(chat_body()), model)
    assert (info.value.status, info.value.code) == (status, code)
    if status == 429:
        assert info.value.retry_after == 2.0
    if status == 400:
        assert info.value.message == "The provided request is not valid (fake-error-400)."
    with pytest.raises(UpstreamError) as streamed:  # a stream refused before it starts: the same error
        await collect(provider, deployment(fake.base_url), request(chat_body(), stream=True), model)
    assert streamed.value.status == status


@pytest.mark.parametrize(
    "dep_args",
    [{"secret": "wrong-secret-key-555555"}, {"key_id": "AKIAUNKNOWN000000000"}, {"region": "us-west-2"}],
)
async def test_refused_credentials_are_502_without_the_key(fake, provider, dep_args):
    failures = fake.stats.auth_failures
    with pytest.raises(UpstreamError) as info:
        await provider.chat(deployment(fake.base_url, **dep_args), request(chat_body()), CLAUDE)
    assert info.value.status == 502 and info.value.code == "upstream_error"
    assert "wrong-secret-key-555555" not in info.value.message and SECRET not in info.value.message
    assert fake.stats.auth_failures == failures + 1


async def test_invalid_requests_come_back_as_400(fake, provider):
    with pytest.raises(UpstreamError) as info:
        await provider.chat(deployment(fake.base_url), request(chat_body("   ")), CLAUDE)
    assert info.value.status == 400 and "blank" in info.value.message


@pytest.mark.parametrize(
    ("model", "status"),
    [
        ("fake-stream-fail", 502),
        ("fake-stream-throttle", 429),
        ("fake-stream-error", 502),
        ("fake-stream-corrupt", 502),
        ("fake-stream-no-metadata", 502),
    ],
)
async def test_broken_streams_end_in_an_error_after_the_first_chunks(fake, provider, model, status):
    chunks: list[dict] = []
    with pytest.raises(UpstreamError) as info:
        async for item in provider.chat_stream(deployment(fake.base_url), request(chat_body(), stream=True), model):
            if isinstance(item, bytes):
                chunks.append(msgspec.json.decode(item))
    assert info.value.status == status
    assert chunks and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert not any(c.get("usage") for c in chunks)


async def test_embeddings(fake, provider):
    body = {"model": "titan", "input": ["one two three", "four five"], "dimensions": 256}
    completion = await provider.embeddings(deployment(fake.base_url), request(body, op=Operation.EMBEDDINGS), TITAN)
    out = msgspec.json.decode(completion.body)
    assert out["object"] == "list" and [d["index"] for d in out["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 256 for d in out["data"])
    assert out["data"][0]["embedding"] != out["data"][1]["embedding"]
    assert completion.usage == Usage(prompt_tokens=5) and out["usage"]["prompt_tokens"] == 5
    assert [c[:2] for c in fake.app.calls[-2:]] == [(TITAN, "invoke"), (TITAN, "invoke")]
    assert sorted(c[2]["inputText"] for c in fake.app.calls[-2:]) == ["four five", "one two three"]


async def test_embeddings_errors(fake, provider):
    dep = deployment(fake.base_url)
    with pytest.raises(UpstreamError) as info:
        await provider.embeddings(dep, request({"model": "x", "input": "hi"}, op=Operation.EMBEDDINGS), CLAUDE)
    assert info.value.status == 400 and "no embeddings" in info.value.message
    with pytest.raises(UpstreamError) as info:  # Bedrock's own validation, passed through
        await provider.embeddings(dep, request({"model": "x", "input": "hi", "dimensions": 1000}, op=Operation.EMBEDDINGS), TITAN)
    assert info.value.status == 400 and "dimensions" in info.value.message


async def test_no_native_route(fake, provider):
    with pytest.raises(UpstreamError) as info:
        provider.native_headers(deployment(fake.base_url))
    assert info.value.status == 404


async def test_missing_credentials_are_a_configuration_error(fake, provider):
    requests = fake.stats.requests
    bare = Deployment(
        id="bedrock/1",
        model_name="claude",
        provider="bedrock",
        upstream_model=CLAUDE,
        api_base=fake.base_url,
        extra=(("aws_region_name", "us-east-1"),),
    )
    with pytest.raises(UpstreamError) as info:
        await provider.chat(bare, request(chat_body()), CLAUDE)
    assert info.value.status == 500 and "aws_secret_access_key" in info.value.message
    assert fake.stats.requests == requests  # nothing unsigned was sent
