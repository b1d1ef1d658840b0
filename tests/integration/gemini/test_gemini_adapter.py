"""The Gemini adapter against the fake Google upstream (bench/fake_gemini.py), in-process,
through a real UpstreamClient: chat, streams, tool calls, errors, embeddings and the native
passthrough hooks (Vertex AI: test_vertex_adapter.py)."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from llmgw.contracts import Operation
from tests.integration.gemini.support import (
    HELLO,
    KEY,
    WEATHER_TOOLS,
    collect,
    gemini_deployment,
    native_items,
    text_of,
    upstream_request,
)
from workers.providers.base import UpstreamError
from workers.providers.gemini import Gemini
from workers.usage import Usage

pytestmark = pytest.mark.integration


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
