"""The Anthropic converters: OpenAI chat request -> Messages request, Message -> chat.completion,
stream events -> chunks, usage, and errors."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from llmgw.config import Deployment, Secret
from workers.providers.anthropic import AnthropicUsageReader
from workers.providers.anthropic.request import chat_request_to_anthropic, image_url_to_source
from workers.providers.anthropic.response import (
    anthropic_error_to_upstream_error,
    anthropic_message_to_chat_completion,
    anthropic_usage_to_usage,
    usage_json,
)
from workers.providers.anthropic.stream import AnthropicStreamTranslator
from workers.providers.anthropic.wire import AnthropicUsage, event_decoder, message_decoder
from workers.providers.base import UpstreamError
from workers.usage import Usage

pytestmark = pytest.mark.unit

KEY = "sk-ant-live-secret-77"
DEPLOYMENT = Deployment(
    id="claude/0",
    model_name="claude",
    provider="anthropic",
    upstream_model="claude-x",
    api_base="https://api.anthropic.com",
    api_key=Secret(KEY),
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]


def convert(body: dict, system_prompts: list[str] | None = None, stream: bool = False) -> dict:
    return chat_request_to_anthropic(body, "claude-x", system_prompts or [], stream)


# ---- request ---------------------------------------------------------------------------------


def test_system_prompts_go_first_then_the_clients_system_and_developer_messages():
    out = convert(
        {
            "messages": [
                {"role": "system", "content": "client system"},
                {"role": "user", "content": "hi"},
                {"role": "developer", "content": [{"type": "text", "text": "dev", "cache_control": {"type": "ephemeral"}}]},
            ]
        },
        ["policy one", "policy two"],
    )
    assert out["system"] == [
        {"type": "text", "text": "policy one"},
        {"type": "text", "text": "policy two"},
        {"type": "text", "text": "client system"},
        {"type": "text", "text": "dev", "cache_control": {"type": "ephemeral"}},
    ]
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert out["model"] == "claude-x" and out["max_tokens"] == 4096 and "stream" not in out


def test_consecutive_same_role_messages_are_merged_and_empty_text_dropped():
    out = convert(
        {
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": ""}]},
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "three"},
            ]
        }
    )
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][0]["content"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert out["messages"][1]["content"] == [{"type": "text", "text": "a"}]


def test_tool_calls_and_results_become_tool_use_and_tool_result_blocks():
    out = convert(
        {
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"location":"Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
                {"role": "user", "content": "thanks"},
            ],
            "tools": TOOLS,
            "tool_choice": "required",
        }
    )
    assistant, results = out["messages"][1], out["messages"][2]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"location": "Rome"}},
        ],
    }
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"type": "text", "text": "thanks"},
        ],
    }
    assert out["tools"] == [
        {
            "name": "get_weather",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
            "description": "Weather in a city",
        }
    ]
    assert out["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(choice, parallel, expected):
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": TOOLS,
        "tool_choice": choice,
        "parallel_tool_calls": parallel,
    }
    assert convert(body)["tool_choice"] == expected


def test_images_sampling_limits_stop_and_user():
    out = convert(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
                    ],
                }
            ],
            "max_tokens": 300,
            "max_completion_tokens": 200,
            "stop": "END",
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "user": "user-42",
            "stream": True,
            "stream_options": {"include_usage": True},
            "frequency_penalty": 0.1,
        },
        stream=True,
    )
    assert out["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert out["max_tokens"] == 200 and out["stop_sequences"] == ["END"]
    assert out["temperature"] == 0.2 and out["top_p"] == 0.9 and out["top_k"] == 40
    assert out["metadata"] == {"user_id": "user-42"}
    assert out["stream"] is True
    # OpenAI-only fields are not sent (Anthropic refuses unknown fields)
    assert not {"stream_options", "frequency_penalty", "user", "stop", "max_completion_tokens"} & set(out)
    assert convert({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "x"}], "n": 2},
        {"messages": [{"role": "function", "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}]},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "code_interpreter"}]},
    ],
)
def test_requests_anthropic_cannot_serve_are_refused_with_400(body):
    with pytest.raises(UpstreamError) as info:
        convert(body)
    assert info.value.status == 400 and info.value.type == "invalid_request_error"


def test_image_sources():
    assert image_url_to_source("data:image/webp;base64,AAAA") == {"type": "base64", "media_type": "image/webp", "data": "AAAA"}
    with pytest.raises(UpstreamError):
        image_url_to_source("data:image/png,notbase64")
    with pytest.raises(UpstreamError):
        image_url_to_source("ftp://x/y.png")


# ---- response and usage ----------------------------------------------------------------------


def test_usage_counts_cache_reads_and_writes_in_prompt_tokens():
    u = AnthropicUsage(input_tokens=10, output_tokens=7, cache_creation_input_tokens=20, cache_read_input_tokens=30)
    usage = anthropic_usage_to_usage(u)
    assert usage == Usage(prompt_tokens=60, completion_tokens=7, cached_tokens=30, cache_write_tokens=20)
    assert usage_json(usage)["prompt_tokens_details"] == {"cached_tokens": 30}
    assert usage_json(usage)["total_tokens"] == 67
    assert anthropic_usage_to_usage(AnthropicUsage(input_tokens=3, output_tokens=1)) == Usage(3, 1)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), (None, "stop")],
)
def test_message_to_chat_completion(stop_reason, finish):
    raw = msgspec.json.encode(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [
                {"type": "text", "text": "Hello "},
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "there."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
            ],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 9, "cache_read_input_tokens": 2},
        }
    )
    message = message_decoder.decode(raw)
    usage = anthropic_usage_to_usage(message.usage)
    out = msgspec.json.decode(anthropic_message_to_chat_completion(message, usage))
    choice = out["choices"][0]
    assert out["object"] == "chat.completion" and out["id"] == "msg_1" and out["model"] == "claude-x"
    assert choice["finish_reason"] == finish
    assert choice["message"]["content"] == "Hello there."
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_1" and call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert msgspec.json.decode(call["function"]["arguments"]) == {"location": "Paris"}
    assert out["usage"]["prompt_tokens"] == 7 and out["usage"]["completion_tokens"] == 9
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 2


def test_tool_only_answer_has_null_content():
    message = message_decoder.decode(
        b'{"id":"m","model":"c","content":[{"type":"tool_use","id":"t","name":"f","input":{}}],"stop_reason":"tool_use"}'
    )
    reply = msgspec.json.decode(anthropic_message_to_chat_completion(message, None))
    assert reply["choices"][0]["message"]["content"] is None and "usage" not in reply
    assert reply["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


# ---- errors ----------------------------------------------------------------------------------


def error_body(kind: str, message: str) -> bytes:
    return msgspec.json.encode({"type": "error", "error": {"type": kind, "message": message}})


@pytest.mark.parametrize(
    ("status", "kind", "client_status"),
    [
        (400, "invalid_request_error", 400),
        (401, "authentication_error", 502),
        (403, "permission_error", 502),
        (404, "not_found_error", 404),
        (413, "request_too_large", 413),
        (429, "rate_limit_error", 429),
        (500, "api_error", 502),
        (529, "overloaded_error", 503),
    ],
)
def test_errors_map_to_client_statuses(status, kind, client_status):
    err = anthropic_error_to_upstream_error(
        status, error_body(kind, f"bad things with {KEY}"), httpx.Headers({"retry-after": "7"}), DEPLOYMENT
    )
    assert err.status == client_status
    assert KEY not in err.message
    if status == 429:
        assert err.retry_after == 7.0 and err.code == "rate_limit_exceeded"
    if status == 400:
        assert err.message == "bad things with ***" and err.type == "invalid_request_error"
    if status in (401, 403):
        assert err.code == "upstream_error" and "bad things" not in err.message


def test_non_json_error_body_is_kept_readable():
    err = anthropic_error_to_upstream_error(502, b"<html>bad gateway</html>", httpx.Headers(), DEPLOYMENT)
    assert err.status == 502 and "bad gateway" in err.message


# ---- stream ----------------------------------------------------------------------------------

STREAM = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_9",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 4, "output_tokens": 1, "cache_creation_input_tokens": 6, "cache_read_input_tokens": 8},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " check."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {}},
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"location":'}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ' "Paris"}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 13}},
    {"type": "message_stop"},
]


def run_stream(events: list[dict], include_usage: bool) -> tuple[list[dict], list[Usage], AnthropicStreamTranslator]:
    translator = AnthropicStreamTranslator(DEPLOYMENT, "claude-x", include_usage)
    chunks, usages = [], []
    for event in events:
        for item in translator.feed(event_decoder.decode(msgspec.json.encode(event))):
            if isinstance(item, Usage):
                usages.append(item)
            else:
                chunks.append(msgspec.json.decode(item))
    return chunks, usages, translator


def test_stream_events_become_openai_chunks_in_order():
    chunks, usages, translator = run_stream(STREAM, include_usage=True)
    assert translator.finished
    assert all(c["id"] == "msg_9" and c["object"] == "chat.completion.chunk" for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas if d.get("content")] == ["Let me", " check."]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {"index": 0, "id": "toolu_7", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    assert "".join(c["function"]["arguments"] for c in calls) == '{"location": "Paris"}'
    assert all(c["index"] == 0 for c in calls)
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [f["choices"][0]["finish_reason"] for f in finals] == ["tool_calls"]
    assert usages == [Usage(prompt_tokens=18, completion_tokens=13, cached_tokens=8, cache_write_tokens=6)]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 18
    assert chunks[-1]["usage"]["completion_tokens"] == 13 and chunks[-1]["usage"]["total_tokens"] == 31


def test_stream_without_include_usage_has_no_usage_chunk():
    chunks, usages, _ = run_stream(STREAM, include_usage=False)
    assert all(c["choices"] for c in chunks) and len(usages) == 1


def test_second_tool_block_gets_the_next_tool_index():
    events = [
        *STREAM[:11],
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_8", "name": "f", "input": {}},
        },
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
    ]
    chunks, _, translator = run_stream(events, include_usage=False)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert [c["index"] for c in calls if "id" in c] == [0, 1] and calls[-1]["index"] == 1
    assert not translator.finished


@pytest.mark.parametrize(("kind", "status"), [("overloaded_error", 503), ("api_error", 502)])
def test_error_event_mid_stream_raises(kind, status):
    events = [*STREAM[:4], {"type": "error", "error": {"type": kind, "message": f"oops {KEY}"}}]
    with pytest.raises(UpstreamError) as info:
        run_stream(events, include_usage=False)
    assert info.value.status == status and KEY not in info.value.message


def test_native_usage_reader_reads_bodies_and_stream_events():
    reader = AnthropicUsageReader()
    reader.body(b'{"id":"m","usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":5}}')
    assert reader.usage == Usage(prompt_tokens=8, completion_tokens=4, cached_tokens=5)
    reader = AnthropicUsageReader()
    for event in STREAM:
        reader.event(msgspec.json.encode(event))
    assert reader.usage == Usage(prompt_tokens=18, completion_tokens=13, cached_tokens=8, cache_write_tokens=6)
    reader = AnthropicUsageReader()
    reader.body(b"not json")
    reader.event(b'{"type":"message_delta", broken')
    assert reader.usage is None
