"""The Anthropic adapter against the fake Anthropic Messages API (bench/fake_anthropic.py), over
the worker's real upstream client."""

from __future__ import annotations

import anthropic
import msgspec
import pytest

from bench.fake_anthropic import start_fake
from llmgw.config import Deployment, Secret
from llmgw.contracts import NativeCall, UpstreamRequest
from tests.integration.adapter_support import collect, upstream_request
from tests.procs import free_port
from workers.http_client import UpstreamClient
from workers.providers.anthropic import Anthropic
from workers.providers.base import NativeHead, UpstreamError
from workers.usage import Usage

pytestmark = pytest.mark.integration

KEY = "sk-ant-integration-secret-31337"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}},
        },
    }
]
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
async def fake():
    handle, _ = await start_fake(api_key=KEY)
    yield handle
    await handle.stop()


@pytest.fixture(scope="module")
async def provider():
    client = UpstreamClient(16)
    yield Anthropic(client, 30.0, 5.0)
    await client.aclose()


def deployment(fake, key: str = KEY, base: str | None = None) -> Deployment:
    return Deployment(
        id="claude/0",
        model_name="claude",
        provider="anthropic",
        upstream_model="claude-x",
        api_base=base or fake.base_url,
        api_key=Secret(key),
    )


def request(body: dict, *, stream: bool = False, include_usage: bool = False, system_prompts=(), native=None) -> UpstreamRequest:
    return upstream_request(
        body, "claude", "claude/0", stream=stream, include_usage=include_usage, system_prompts=system_prompts, native=native
    )


async def chat(provider, fake, body: dict, model: str = "claude-x", **kwargs):
    completion = await provider.chat(deployment(fake), request(body, **kwargs), model)
    return msgspec.json.decode(completion.body), completion.usage


async def stream(provider, fake, body: dict, model: str = "claude-x", **kwargs) -> tuple[list[dict], list[Usage]]:
    return await collect(provider.chat_stream(deployment(fake), request(body, stream=True, **kwargs), model))


async def test_chat_answers_in_openai_format_with_exact_usage(provider, fake):
    out, usage = await chat(
        provider, fake, {"model": "claude", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 5}
    )
    assert out["object"] == "chat.completion" and out["model"] == "claude-x"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "w0 w1 w2 w3 w4"}
    assert out["choices"][0]["finish_reason"] == "length"
    # the fake counts 2 words + 1 message of prompt, one token per word of answer
    assert usage == Usage(prompt_tokens=3, completion_tokens=5)
    assert (out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"], out["usage"]["total_tokens"]) == (3, 5, 8)
    sent = fake.stats.last_request
    assert sent["model"] == "claude-x" and sent["max_tokens"] == 5 and "system" not in sent


async def test_max_tokens_defaults_and_api_base_may_end_in_v1(provider, fake):
    body = {"model": "claude", "messages": [{"role": "user", "content": "Hi"}]}
    completion = await provider.chat(deployment(fake, base=fake.base_url + "/v1"), request(body), "claude-x")
    out = msgspec.json.decode(completion.body)
    assert out["choices"][0]["message"]["content"] == "w0 w1 w2 w3 w4 w5 w6 w7"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert fake.stats.last_request["max_tokens"] == 4096


async def test_policy_system_prompts_come_before_the_clients(provider, fake):
    body = {
        "model": "claude",
        "messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hello there"}],
        "stop": ["w3"],
    }
    out, usage = await chat(provider, fake, body, system_prompts=["Be brief."])
    assert fake.stats.last_request["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "You are helpful."},
    ]
    assert fake.stats.last_request["stop_sequences"] == ["w3"]
    assert out["choices"][0]["message"]["content"] == "w0 w1 w2" and out["choices"][0]["finish_reason"] == "stop"
    assert usage == Usage(prompt_tokens=2 + 3 + 2 + 1, completion_tokens=3)


async def test_prompt_cache_reads_and_writes_are_reported(provider, fake):
    body = {
        "model": "claude",
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "a long shared preamble", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "user", "content": "cached:2 hello"},
        ],
        "max_tokens": 2,
    }
    out, usage = await chat(provider, fake, body)
    # 4 system words + 2 user words + 1 message: 4 written to the cache, 2 read from it, 1 uncached
    assert usage == Usage(prompt_tokens=7, completion_tokens=2, cached_tokens=2, cache_write_tokens=4)
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 2
    assert out["usage"]["cache_creation_input_tokens"] == 4


async def test_stream_relays_chunks_in_order_then_usage(provider, fake):
    body = {"model": "claude", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 4}
    chunks, usages = await stream(provider, fake, body, include_usage=True)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "w0 w1 w2 w3"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length" and all(f is None for f in finishes[:-1])
    assert usages == [Usage(prompt_tokens=3, completion_tokens=4)]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 7
    assert len({c["id"] for c in chunks}) == 1 and fake.stats.last_request["stream"] is True

    chunks, usages = await stream(provider, fake, body)
    assert all(c["choices"] for c in chunks) and usages == [Usage(prompt_tokens=3, completion_tokens=4)]


async def test_tool_call_round_trip(provider, fake):
    out, usage = await chat(provider, fake, {"model": "claude", "messages": WEATHER, "tools": TOOLS, "tool_choice": "auto"})
    message = out["choices"][0]["message"]
    assert out["choices"][0]["finish_reason"] == "tool_calls" and message["content"] == "Let me check."
    (call,) = message["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather" and call["id"].startswith("toolu_")
    assert msgspec.json.decode(call["function"]["arguments"]) == {"location": "Paris", "unit": "celsius"}
    assert usage.completion_tokens == 13
    sent = fake.stats.last_request
    assert sent["tools"][0]["name"] == "get_weather" and sent["tools"][0]["input_schema"]["type"] == "object"
    assert sent["tool_choice"] == {"type": "auto"}

    # the client sends the tool's result back (the fake refuses a tool_result that answers no tool_use)
    follow_up = [*WEATHER, message, {"role": "tool", "tool_call_id": call["id"], "content": "18 degrees and sunny"}]
    out, _ = await chat(provider, fake, {"model": "claude", "messages": follow_up, "tools": TOOLS, "max_tokens": 3})
    assert out["choices"][0]["message"]["content"] == "w0 w1 w2"
    sent = fake.stats.last_request["messages"]
    assert sent[1]["content"][1] == {
        "type": "tool_use",
        "id": call["id"],
        "name": "get_weather",
        "input": {"location": "Paris", "unit": "celsius"},
    }
    assert sent[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18 degrees and sunny"}],
    }


async def test_streamed_tool_call(provider, fake):
    chunks, usages = await stream(provider, fake, {"model": "claude", "messages": WEATHER, "tools": TOOLS})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["index"] == 0 and calls[0]["id"].startswith("toolu_") and calls[0]["function"]["name"] == "get_weather"
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert msgspec.json.decode(arguments) == {"location": "Paris", "unit": "celsius"}
    assert len(calls) > 2  # the arguments came in fragments
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check."
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert usages[0].completion_tokens == 13


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [
        ("fake-error-400", 400, "invalid_request_error"),
        ("fake-error-404", 404, "not_found_error"),
        ("fake-error-429", 429, "rate_limit_exceeded"),
        ("fake-error-500", 502, "upstream_error"),
        ("fake-overloaded", 503, "service_unavailable"),
        ("fake-error-403", 502, "upstream_error"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_upstream_errors(provider, fake, model, status, code, streaming):
    body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(UpstreamError) as info:
        if streaming:
            await stream(provider, fake, body, model=model)
        else:
            await chat(provider, fake, body, model=model)
    assert (info.value.status, info.value.code) == (status, code)
    if model == "fake-error-429":
        assert info.value.retry_after == 1.0
    if model == "fake-error-400":
        assert info.value.message == "messages: fake bad request"


async def test_a_request_anthropic_refuses_passes_its_message_through(provider, fake):
    with pytest.raises(UpstreamError) as info:
        await chat(provider, fake, {"model": "claude", "messages": [{"role": "user", "content": "hi"}], "temperature": 1.5})
    assert info.value.status == 400 and "temperature" in info.value.message


async def test_wrong_key_is_a_gateway_problem_and_never_echoed(provider, fake):
    wrong = "sk-ant-wrong-key-0000000"
    with pytest.raises(UpstreamError) as info:
        await provider.chat(deployment(fake, key=wrong), request({"messages": [{"role": "user", "content": "hi"}]}), "claude-x")
    assert info.value.status == 502 and info.value.code == "upstream_error"
    assert wrong not in info.value.message and KEY not in info.value.message


async def test_stream_cut_off_or_ended_by_an_error_event(provider, fake):
    body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    received: list[bytes] = []
    with pytest.raises(UpstreamError) as info:
        async for item in provider.chat_stream(deployment(fake), request(body, stream=True), "fake-stream-fail"):
            received.append(item)
    assert info.value.status == 502 and info.value.code == "upstream_error"
    assert len(received) >= 2 and not any(isinstance(i, Usage) for i in received)  # the words came, no usage
    with pytest.raises(UpstreamError) as info:
        await stream(provider, fake, body, model="fake-stream-overloaded")
    assert info.value.status == 503


async def test_unreachable_upstream(provider, fake):
    dead = deployment(fake, base=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UpstreamError) as info:
        await provider.chat(dead, request({"messages": [{"role": "user", "content": "hi"}]}), "claude-x")
    assert info.value.status == 502 and info.value.code == "upstream_unreachable"


async def test_no_embeddings(provider, fake):
    with pytest.raises(UpstreamError) as info:
        await provider.embeddings(deployment(fake), request({"model": "claude", "input": "x"}), "claude-x")
    assert info.value.status == 400 and "no embeddings" in info.value.message


# ---- native passthrough ------------------------------------------------------------------------


async def native(provider, fake, body: dict, headers=(), model: str = "claude-x", path: str = "/v1/messages"):
    call = NativeCall(method="POST", path=path, headers=[("content-type", "application/json"), *headers])
    items = [
        i async for i in provider.native(deployment(fake), request(body, stream=bool(body.get("stream")), native=call), model)
    ]
    head = items[0]
    assert isinstance(head, NativeHead)
    data = b"".join(i for i in items[1:] if isinstance(i, bytes))
    usages = [i for i in items if isinstance(i, Usage)]
    return head, data, usages


async def test_native_call_is_relayed_with_the_model_swapped_and_metered(provider, fake):
    body = {"model": "claude", "max_tokens": 3, "messages": [{"role": "user", "content": "Hello there"}]}
    head, data, usages = await native(provider, fake, body)
    assert head.status == 200 and not head.stream and ("content-type", "application/json") in head.headers
    message = msgspec.json.decode(data)
    assert message["type"] == "message" and message["model"] == "claude-x"
    assert message["content"] == [{"type": "text", "text": "w0 w1 w2"}]
    assert usages == [Usage(prompt_tokens=3, completion_tokens=3)]
    # no anthropic-version from the client: the default one was added (the fake would refuse otherwise)
    assert fake.stats.last_headers["anthropic-version"] == "2023-06-01"
    assert fake.stats.last_request["model"] == "claude-x"


async def test_native_stream_keeps_the_clients_anthropic_headers(provider, fake):
    body = {"model": "claude", "max_tokens": 2, "stream": True, "messages": [{"role": "user", "content": "cached:1 hi"}]}
    headers = [("anthropic-version", "2023-01-01"), ("anthropic-beta", "prompt-caching-2024-07-31")]
    head, data, usages = await native(provider, fake, body, headers)
    assert head.stream and head.status == 200
    assert data.startswith(b"event: message_start") and b"event: message_stop" in data and b"event: ping" in data
    assert usages == [Usage(prompt_tokens=3, completion_tokens=2, cached_tokens=1)]
    assert fake.stats.last_headers == {"anthropic-version": "2023-01-01", "anthropic-beta": "prompt-caching-2024-07-31"}


async def test_native_errors_are_relayed_scrubbed_and_unmetered(provider, fake):
    head, data, usages = await native(provider, fake, {"model": "claude", "messages": []}, model="fake-error-400")
    assert head.status == 400 and usages == []
    assert msgspec.json.decode(data)["error"]["type"] == "invalid_request_error"
    head, data, usages = await native(
        provider, fake, {"model": "claude", "messages": [{"role": "user", "content": "a b"}]}, path="/v1/messages/count_tokens"
    )
    assert head.status == 200 and msgspec.json.decode(data) == {"input_tokens": 3} and usages == []


# ---- the fake itself speaks Anthropic's wire format: the official SDK reads it -------------------


async def test_the_official_sdk_reads_the_fake(fake):
    client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key=KEY, max_retries=0)
    message = await client.messages.create(model="claude-x", max_tokens=3, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "w0 w1 w2" and message.usage.input_tokens == 2
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]
    async with client.messages.stream(model="claude-x", max_tokens=50, messages=WEATHER, tools=tools) as events:
        final = await events.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[1].input == {"location": "Paris", "unit": "celsius"}
    with pytest.raises(anthropic.APIStatusError) as info:
        await client.messages.create(model="fake-overloaded", max_tokens=3, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 529
    await client.close()
