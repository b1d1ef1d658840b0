"""Converters of the Gemini / Vertex AI adapters: requests, answers, stream events, usage.
(Errors, service accounts, URLs and native paths: test_gemini_errors_auth_routes.py.)"""

from __future__ import annotations

import base64
import json
import struct

import pytest

from llmgw.config import Deployment, Secret
from tests.unit.openai_requests import chat_request, embeddings_request
from workers.providers.errors import UpstreamError
from workers.providers.gemini.request import (
    chat_request_to_gemini,
    embedding_inputs,
    embeddings_to_gemini_batch,
    embeddings_to_vertex_predict,
)
from workers.providers.gemini.response import (
    StreamConverter,
    embeddings_list,
    finish_reason_to_openai,
    gemini_response_to_chat,
    gemini_usage_to_usage,
)
from workers.providers.gemini.wire import UsageMetadata, response_decoder
from workers.usage import Usage

pytestmark = pytest.mark.unit

KEY = "AIzaSy-gemini-secret-777"
GEMINI = Deployment(
    id="gem/0",
    model_name="gem",
    provider="gemini",
    upstream_model="gemini-1.5-pro",
    api_base="https://generativelanguage.googleapis.com",
    api_key=Secret(KEY),
)


def convert(body: dict, system_prompts: list[str] | None = None) -> dict:
    return chat_request_to_gemini(chat_request(json.dumps(body).encode()), system_prompts or [])


def decode_response(doc: dict):
    return response_decoder.decode(json.dumps(doc).encode())


# ---- requests ---------------------------------------------------------------------------


def test_system_prompts_go_to_system_instruction_policy_first_and_roles_map():
    out = convert(
        {
            "messages": [
                {"role": "system", "content": "client system"},
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi"},
                {"role": "developer", "content": [{"type": "text", "text": "dev note"}]},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ]
        },
        ["policy one", "policy two"],
    )
    assert out["systemInstruction"] == {
        "parts": [{"text": "policy one"}, {"text": "policy two"}, {"text": "client system"}, {"text": "dev note"}]
    }
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "hello"}]},
        {"role": "model", "parts": [{"text": "hi"}]},
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
    ]
    assert "generationConfig" not in out and "tools" not in out


def test_images_go_inline_or_by_reference():
    out = convert(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is it"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?x=1"}},
                    ],
                }
            ]
        }
    )
    assert out["contents"][0]["parts"] == [
        {"text": "what is it"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?x=1"}},
    ]


def test_tools_tool_choice_and_a_tool_call_round_trip():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {
                        "location": {"type": "string"},
                        "unit": {"type": "object", "additionalProperties": False},
                    },
                    "required": ["location"],
                    "additionalProperties": False,
                },
            },
        }
    ]
    out = convert(
        {
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                        },
                        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
                {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
            ],
            "tools": tools,
            "tool_choice": "required",
        }
    )
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather of a city",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}, "unit": {"type": "object"}},
                        "required": ["location"],
                    },
                }
            ]
        }
    ]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    model_turn, results = out["contents"][1], out["contents"][2]
    assert model_turn == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    }
    # Both results in one user turn, named after the calls they answer.
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}},
        ],
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
    ],
)
def test_tool_choice_modes(choice, config):
    tools = [{"type": "function", "function": {"name": "f"}}]
    out = convert({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice})
    assert out["toolConfig"] == {"functionCallingConfig": config}


def test_generation_config():
    out = convert(
        {
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "n": 2,
            "seed": 7,
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
        }
    )
    assert out["generationConfig"] == {
        "maxOutputTokens": 10,  # the lower of the two limits
        "temperature": 0.5,
        "topP": 0.9,
        "candidateCount": 2,
        "seed": 7,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert convert({"messages": [{"role": "user", "content": "x"}], "max_tokens": 4, "stop": ["a", "b"]})["generationConfig"] == {
        "maxOutputTokens": 4,
        "stopSequences": ["a", "b"],
    }


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "tool", "tool_call_id": "nope", "content": "x"}],
        [{"role": "user", "content": [{"type": "video", "video": {}}]}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}]}],
    ],
)
def test_requests_gemini_cannot_take_are_400(messages):
    with pytest.raises(UpstreamError) as info:
        convert({"messages": messages})
    assert info.value.status == 400 and info.value.type == "invalid_request_error"


def test_embedding_requests():
    texts, dims, b64 = embedding_inputs(
        embeddings_request(b'{"model":"e","input":["a b","c"],"dimensions":4,"encoding_format":"base64"}')
    )
    assert (texts, dims, b64) == (["a b", "c"], 4, True)
    assert embeddings_to_gemini_batch(texts, "text-embedding-004", dims) == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 4},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "c"}]}, "outputDimensionality": 4},
        ]
    }
    assert embeddings_to_vertex_predict(["x"], None) == {"instances": [{"content": "x"}]}
    assert embedding_inputs(embeddings_request(b'{"model":"e","input":"one"}')) == (["one"], None, False)
    with pytest.raises(UpstreamError) as info:
        embedding_inputs(embeddings_request(b'{"model":"e","input":[[1,2,3]]}'))
    assert info.value.status == 400


# ---- answers ----------------------------------------------------------------------------


def test_usage_counts_thoughts_as_output_and_reads_cache():
    meta = UsageMetadata(
        promptTokenCount=100,
        candidatesTokenCount=20,
        cachedContentTokenCount=60,
        thoughtsTokenCount=7,
        toolUsePromptTokenCount=3,
    )
    assert gemini_usage_to_usage(meta) == Usage(prompt_tokens=103, completion_tokens=27, cached_tokens=60, reasoning_tokens=7)


@pytest.mark.parametrize(
    ("reason", "called", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("SOMETHING_NEW", False, "stop"),
        (None, False, None),
    ],
)
def test_finish_reasons(reason, called, expected):
    assert finish_reason_to_openai(reason, called) == expected


def test_whole_answer_with_text_thoughts_and_function_calls():
    resp = decode_response(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "thinking...", "thought": True},
                            {"text": "Let me "},
                            {"text": "check."},
                            {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
                        ],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13},
            "modelVersion": "gemini-1.5-pro-002",
            "responseId": "abc",
        }
    )
    body, usage = gemini_response_to_chat(resp, "gemini-1.5-pro")
    assert body["id"] == "chatcmpl-abc" and body["object"] == "chat.completion" and body["model"] == "gemini-1.5-pro-002"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "Let me check." and message["reasoning_content"] == "thinking..."
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"location": "Paris"}
    assert usage == Usage(9, 4)
    assert body["usage"]["total_tokens"] == 13


def test_blocked_prompt_is_a_content_filter_finish():
    resp = decode_response({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}})
    body, usage = gemini_response_to_chat(resp, "m")
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": None}, "logprobs": None, "finish_reason": "content_filter"}
    ]
    assert usage == Usage(5, 0)


def _chunks(converter: StreamConverter, events: list[dict]) -> list[dict]:
    out = []
    for event in events:
        out += [json.loads(c) for c in converter.event(decode_response(event))]
    return out


def test_stream_events_become_openai_chunks():
    converter = StreamConverter("gemini-1.5-flash")
    chunks = _chunks(
        converter,
        [
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": "hmm", "thought": True}, {"text": "Hel"}]}, "index": 0}
                ]
            },
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}, "index": 0}]},
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]}, "index": 0}]},
            {
                "candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS", "index": 0}],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 3, "thoughtsTokenCount": 2},
            },
        ],
    )
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": "Hel", "reasoning_content": "hmm"},
        {"content": "lo"},
        {"content": "!"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "length"]
    assert {c["id"] for c in chunks} == {converter.id} and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert converter.finished and converter.usage == Usage(3, 5, reasoning_tokens=2)
    final = json.loads(converter.usage_chunk(converter.usage))
    assert final["choices"] == [] and final["usage"]["total_tokens"] == 8


def test_stream_function_calls_are_indexed_tool_call_deltas():
    converter = StreamConverter("m")
    call = {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}
    chunks = _chunks(
        converter,
        [{"candidates": [{"content": {"role": "model", "parts": [call, call]}, "finishReason": "STOP", "index": 0}]}],
    )
    delta = chunks[0]["choices"][0]["delta"]
    assert delta["role"] == "assistant"
    assert [t["index"] for t in delta["tool_calls"]] == [0, 1]
    assert delta["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"location":"Paris"}'}
    assert delta["tool_calls"][0]["id"] != delta["tool_calls"][1]["id"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_stream_without_finish_reason_is_not_finished():
    converter = StreamConverter("m")
    _chunks(converter, [{"candidates": [{"content": {"parts": [{"text": "a"}]}, "index": 0}]}])
    assert not converter.finished and converter.usage is None
    blocked = StreamConverter("m")
    chunks = _chunks(blocked, [{"promptFeedback": {"blockReason": "OTHER"}}])
    assert blocked.finished and chunks[-1]["choices"][0]["finish_reason"] == "content_filter"


def test_embeddings_list_base64_is_little_endian_float32():
    body = embeddings_list([[0.5, -1.0], [0.25, 2.0]], "text-embedding-004", True, 7)
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 7} and body["object"] == "list"
    raw = base64.b64decode(body["data"][1]["embedding"])
    assert struct.unpack("<2f", raw) == (0.25, 2.0) and body["data"][1]["index"] == 1
    assert embeddings_list([[0.5]], "m", False, None)["data"][0]["embedding"] == [0.5]
