"""The Cohere adapter against the fake Cohere v2 API (bench/fake_cohere.py), over the worker's real
upstream client."""

from __future__ import annotations

import msgspec
import pytest

from bench.fake_cohere import start_fake
from llmgw.config import Deployment, Secret
from llmgw.contracts import NativeCall, Operation, UpstreamRequest
from tests.integration.adapter_support import collect, upstream_request
from tests.procs import free_port
from workers.http_client import UpstreamClient
from workers.providers.base import NativeHead, UpstreamError
from workers.providers.cohere import Cohere
from workers.usage import Usage

pytestmark = pytest.mark.integration

KEY = "co-integration-secret-31337"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
HELLO = [{"role": "user", "content": "Hello there friend"}]


@pytest.fixture(scope="module")
async def fake():
    handle, _ = await start_fake(api_key=KEY)
    yield handle
    await handle.stop()


@pytest.fixture(scope="module")
async def provider():
    client = UpstreamClient(16)
    yield Cohere(client, 30.0, 5.0)
    await client.aclose()


def deployment(fake, key: str = KEY, base: str | None = None) -> Deployment:
    return Deployment(
        id="command/0",
        model_name="command",
        provider="cohere",
        upstream_model="command-r",
        api_base=base or fake.base_url,
        api_key=Secret(key),
    )


def request(
    body: dict, *, stream: bool = False, include_usage: bool = False, system_prompts=(), operation=Operation.CHAT, native=None
) -> UpstreamRequest:
    return upstream_request(
        body,
        "command",
        "command/0",
        stream=stream,
        include_usage=include_usage,
        system_prompts=system_prompts,
        operation=operation,
        native=native,
    )


async def chat(provider, fake, body: dict, model: str = "command-r", **kwargs):
    completion = await provider.chat(deployment(fake), request(body, **kwargs), model)
    return msgspec.json.decode(completion.body), completion.usage


async def stream(provider, fake, body: dict, model: str = "command-r", **kwargs) -> tuple[list[dict], list[Usage]]:
    return await collect(provider.chat_stream(deployment(fake), request(body, stream=True, **kwargs), model))


async def test_chat_answers_in_openai_format_with_exact_usage(provider, fake):
    out, usage = await chat(provider, fake, {"model": "command", "messages": HELLO, "max_tokens": 4})
    assert out["object"] == "chat.completion" and out["model"] == "command-r"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "w0 w1 w2 w3"}
    assert out["choices"][0]["finish_reason"] == "length"
    # usage.tokens: 3 words + 1 message (billed_units would say 3)
    assert usage == Usage(4, 4) and out["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    assert fake.app.last_request["max_tokens"] == 4 and fake.app.last_request["model"] == "command-r"


async def test_policy_system_prompts_come_before_the_clients(provider, fake):
    body = {"model": "command", "messages": [{"role": "system", "content": "Client rules."}, *HELLO]}
    out, usage = await chat(provider, fake, body, system_prompts=["Policy rules apply."])
    sent = fake.app.last_request["messages"]
    assert [m["role"] for m in sent] == ["system", "system", "user"]
    assert [m["content"] for m in sent[:2]] == ["Policy rules apply.", "Client rules."]
    assert out["choices"][0]["finish_reason"] == "stop" and usage == Usage(3 + 2 + 3 + 3, 8)


async def test_stream_relays_chunks_in_order_then_usage(provider, fake):
    chunks, usages = await stream(provider, fake, {"model": "command", "messages": HELLO, "max_tokens": 3}, include_usage=True)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "w0 w1 w2"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    assert usages == [Usage(4, 3)] and len({c["id"] for c in chunks}) == 1
    plain, usages = await stream(provider, fake, {"model": "command", "messages": HELLO, "max_tokens": 2})
    assert all(c["choices"] for c in plain) and usages == [Usage(4, 2)]


async def test_tool_call_round_trip(provider, fake):
    out, usage = await chat(provider, fake, {"model": "command", "messages": WEATHER, "tools": TOOLS})
    sent = fake.app.last_request
    assert sent["tools"] == TOOLS
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"] == {"name": "get_weather", "arguments": '{"location": "Paris"}'}
    assert usage == Usage(6 + 1, 6)  # the tool plan "I will look up the weather." is 6 words

    follow_up = [*WEATHER, choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "sunny and 21C"}]
    out, usage = await chat(provider, fake, {"model": "command", "messages": follow_up, "tools": TOOLS})
    sent = fake.app.last_request["messages"]
    assert sent[1] == {"role": "assistant", "tool_calls": [{"id": call["id"], "type": "function", "function": call["function"]}]}
    assert sent[2] == {"role": "tool", "tool_call_id": call["id"], "content": "sunny and 21C"}
    assert out["choices"][0]["message"]["content"] == "tool said: sunny and 21C" and out["choices"][0]["finish_reason"] == "stop"


async def test_streamed_tool_call(provider, fake):
    chunks, usages = await stream(
        provider, fake, {"model": "command", "messages": WEATHER, "tools": TOOLS, "tool_choice": "required"}
    )
    assert fake.app.last_request["tool_choice"] == "REQUIRED"
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0]["id"].startswith("get_weather") and calls[0]["function"]["name"] == "get_weather"
    assert {c["index"] for c in calls} == {0}
    assert "".join(c["function"].get("arguments", "") for c in calls) == '{"location": "Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls" and usages == [Usage(7, 6)]


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("model", "status", "code"),
    [("fake-error-429", 429, "rate_limit_exceeded"), ("fake-error-500", 502, "upstream_error"), ("fake-error-400", 400, None)],
)
async def test_upstream_errors(provider, fake, model, status, code, streaming):
    with pytest.raises(UpstreamError) as err:
        if streaming:
            await stream(provider, fake, {"model": "command", "messages": HELLO}, model=model)
        else:
            await chat(provider, fake, {"model": "command", "messages": HELLO}, model=model)
    assert err.value.status == status and err.value.code == code
    if status == 429:
        assert err.value.retry_after == 1.0
    if status == 400:
        assert err.value.message == "invalid request: fake bad request"


async def test_wrong_key_is_a_gateway_problem_and_never_echoed(provider, fake):
    wrong = "co-wrong-key-000"
    with pytest.raises(UpstreamError) as err:
        await provider.chat(deployment(fake, key=wrong), request({"model": "command", "messages": HELLO}), "command-r")
    assert err.value.status == 502 and wrong not in err.value.message and KEY not in err.value.message


async def test_stream_cut_off_is_a_502(provider, fake):
    chunks = []
    with pytest.raises(UpstreamError) as err:
        async for item in provider.chat_stream(
            deployment(fake), request({"model": "command", "messages": HELLO}, stream=True), "fake-stream-fail"
        ):
            chunks.append(item)
    assert err.value.status == 502 and len(chunks) == 4  # message-start and three words reached the client


async def test_unreachable_upstream(provider, fake):
    with pytest.raises(UpstreamError) as err:
        await provider.chat(
            deployment(fake, base=f"http://127.0.0.1:{free_port()}"),
            request({"model": "command", "messages": HELLO}),
            "command-r",
        )
    assert err.value.status == 502 and err.value.code == "upstream_unreachable"


async def test_embeddings_are_float_documents_with_billed_tokens(provider, fake):
    body = {"model": "embed", "input": ["one two three", "four"]}
    completion = await provider.embeddings(deployment(fake), request(body, operation=Operation.EMBEDDINGS), "embed-english-v3.0")
    out = msgspec.json.decode(completion.body)
    sent = fake.app.last_request
    assert sent == {
        "model": "embed-english-v3.0",
        "texts": ["one two three", "four"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    assert [d["index"] for d in out["data"]] == [0, 1] and all(len(d["embedding"]) == 8 for d in out["data"])
    assert completion.usage == Usage(4, 0) and out["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    as_base64 = await provider.embeddings(
        deployment(fake), request({**body, "encoding_format": "base64"}, operation=Operation.EMBEDDINGS), "e"
    )
    assert isinstance(msgspec.json.decode(as_base64.body)["data"][0]["embedding"], str)


# ---- native passthrough ------------------------------------------------------------------------


async def native(provider, fake, body: dict, model: str = "command-r", path: str = "/v2/chat", key: str = KEY):
    call = NativeCall(method="POST", path=path, headers=[("content-type", "application/json")])
    req = request(body, stream=bool(body.get("stream")), native=call)
    items = [i async for i in provider.native(deployment(fake, key=key), req, model)]
    head = items[0]
    assert isinstance(head, NativeHead)
    return head, b"".join(i for i in items if isinstance(i, bytes)), [i for i in items if isinstance(i, Usage)]


async def test_native_chat_is_relayed_with_the_model_swapped_and_metered(provider, fake):
    head, data, usages = await native(provider, fake, {"model": "command", "messages": HELLO, "max_tokens": 2})
    assert head.status == 200 and not head.stream and fake.app.last_request["model"] == "command-r"
    answer = msgspec.json.decode(data)
    assert answer["message"]["content"] == [{"type": "text", "text": "w0 w1"}] and answer["finish_reason"] == "MAX_TOKENS"
    assert usages == [Usage(4, 2)]


async def test_native_stream_is_relayed_as_cohere_events_and_metered(provider, fake):
    head, data, usages = await native(provider, fake, {"model": "command", "messages": HELLO, "max_tokens": 2, "stream": True})
    assert head.stream and ("content-type", "text/event-stream") in head.headers
    assert b"event: message-start" in data and b"event: message-end" in data and data.count(b"event: content-delta") == 2
    assert usages == [Usage(4, 2)]


async def test_native_embed_is_metered_from_meta(provider, fake):
    head, data, usages = await native(
        provider,
        fake,
        {"model": "embed", "texts": ["a b c"], "input_type": "search_query", "embedding_types": ["float"]},
        path="/v2/embed",
    )
    assert head.status == 200 and msgspec.json.decode(data)["response_type"] == "embeddings_by_type" and usages == [Usage(3, 0)]


async def test_native_errors_are_relayed_unmetered_and_a_wrong_key_is_502(provider, fake):
    head, data, usages = await native(provider, fake, {"model": "command", "messages": HELLO}, model="fake-error-400")
    assert head.status == 400 and msgspec.json.decode(data)["message"] == "invalid request: fake bad request" and usages == []
    with pytest.raises(UpstreamError) as err:
        await native(provider, fake, {"model": "command", "messages": HELLO}, key="co-wrong-key-000")
    assert err.value.status == 502
