"""The Bedrock adapter's converters (OpenAI chat and embeddings requests to Converse and Titan,
and their answers, streams and errors back) and the region a deployment names. The wire protocol
(SigV4, the event stream): test_bedrock_wire.py."""

from __future__ import annotations

import base64
import struct

import httpx
import msgspec
import pytest

from llmgw.config import Deployment, Secret
from workers.providers.base import UpstreamError
from workers.providers.bedrock.adapter import aws_region
from workers.providers.bedrock.converse_request import chat_request_to_converse, encode_converse
from workers.providers.bedrock.converse_response import (
    StreamTranslator,
    TokenUsage,
    bedrock_usage_to_usage,
    converse_response_to_chat,
    decode_response,
)
from workers.providers.bedrock.embeddings import (
    TitanResponse,
    embeddings_request_to_titan,
    is_titan_embedding_model,
    titan_to_embeddings,
)
from workers.providers.bedrock.errors import bedrock_http_error, error_type_name, stream_exception
from workers.usage import Usage

pytestmark = pytest.mark.unit

DEPLOYMENT = Deployment(
    id="bedrock/0",
    model_name="claude",
    provider="bedrock",
    upstream_model="anthropic.claude-3-haiku-20240307-v1:0",
    extra=(
        ("aws_access_key_id", "AKIAFAKEBEDROCK00001"),
        ("aws_region_name", "us-east-1"),
        ("aws_secret_access_key", Secret("live-aws-secret-key-1234")),
    ),
)

# ---- the deployment's region -----------------------------------------------------------------


def test_region_comes_from_the_option_or_the_standard_endpoint():
    assert aws_region(DEPLOYMENT) == "us-east-1"
    bare = Deployment(
        id="x", model_name="x", provider="bedrock", upstream_model="m", api_base="https://bedrock-runtime.eu-west-3.amazonaws.com"
    )
    assert aws_region(bare) == "eu-west-3"
    with pytest.raises(UpstreamError) as info:
        aws_region(msgspec.structs.replace(bare, api_base="http://127.0.0.1:1"))
    assert info.value.status == 500 and "aws_region_name" in info.value.message


# ---- request converter ----------------------------------------------------------------------

PNG = base64.b64encode(b"\x89PNG fake image").decode()


def _converse(body: dict, system_prompts: list[str] | None = None) -> dict:
    return msgspec.json.decode(encode_converse(chat_request_to_converse(msgspec.json.encode(body), system_prompts or [])))


def test_system_prompts_go_first_then_the_clients_and_inference_config_maps():
    out = _converse(
        {
            "model": "claude",
            "messages": [{"role": "system", "content": "client rules"}, {"role": "user", "content": "hi"}],
            "max_tokens": 50,
            "max_completion_tokens": 70,
            "temperature": 0.2,
            "top_p": 1,
            "stop": "END",
        },
        ["policy one", "policy two"],
    )
    assert out["system"] == [{"text": "policy one"}, {"text": "policy two"}, {"text": "client rules"}]
    assert out["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]
    assert out["inferenceConfig"] == {"maxTokens": 70, "temperature": 0.2, "topP": 1.0, "stopSequences": ["END"]}
    assert "toolConfig" not in out


def test_images_tool_calls_and_tool_results_convert_and_roles_alternate():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather now",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "noop"}},
    ]
    out = _converse(
        {
            "model": "claude",
            "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "tooluse_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                        },
                        {"id": "tooluse_2", "type": "function", "function": {"name": "noop", "arguments": ""}},
                    ],
                },
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "tooluse_2", "content": [{"type": "text", "text": "done"}]},
                {"role": "user", "content": "thanks"},
            ],
        }
    )
    assert out["messages"] == [
        {"role": "user", "content": [{"text": "what is this"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]},
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"location": "Paris"}}},
                {"toolUse": {"toolUseId": "tooluse_2", "name": "noop", "input": {}}},
            ],
        },
        {
            "role": "user",
            "content": [  # the tool results and the next user turn become one user message
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "sunny"}]}},
                {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "done"}]}},
                {"text": "thanks"},
            ],
        },
    ]
    assert out["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "inputSchema": {"json": tools[0]["function"]["parameters"]},
                    "description": "Weather now",
                }
            },
            {"toolSpec": {"name": "noop", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
        ],
        "toolChoice": {"tool": {"name": "get_weather"}},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"auto": {}}), ("required", {"any": {}}), (None, None)],
)
def test_tool_choice_strings(choice, expected):
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}]}
    if choice:
        body["tool_choice"] = choice
    assert _converse(body)["toolConfig"].get("toolChoice") == expected


def test_tool_choice_none_drops_the_tools_unless_the_history_uses_them():
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert "toolConfig" not in _converse({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "none"})
    history = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "t1", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "r"},
    ]
    assert _converse({"messages": history, "tools": tools, "tool_choice": "none"})["toolConfig"]["tools"]


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]},
            "messages[0].content[0].image_url",
        ),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]},
            "messages[0].content[0].image_url",
        ),
        (
            {"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{oops"}}]},
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_what_bedrock_cannot_take_is_a_400_naming_the_field(message, param):
    with pytest.raises(UpstreamError) as info:
        chat_request_to_converse(msgspec.json.encode({"messages": [message]}), [])
    assert info.value.status == 400 and info.value.param == param


# ---- response converters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ],
)
def test_converse_response_to_chat_completion(stop, finish):
    raw = msgspec.json.encode(
        {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [
                        {"text": "Let me check."},
                        {"toolUse": {"toolUseId": "tooluse_9", "name": "get_weather", "input": {"location": "Paris"}}},
                    ],
                }
            },
            "stopReason": stop,
            "usage": {
                "inputTokens": 10,
                "outputTokens": 7,
                "totalTokens": 37,
                "cacheReadInputTokens": 15,
                "cacheWriteInputTokens": 5,
            },
            "metrics": {"latencyMs": 100},
        }
    )
    body, usage = converse_response_to_chat(decode_response(raw), "anthropic.claude-3-haiku-20240307-v1:0")
    out = msgspec.json.decode(body)
    assert out["object"] == "chat.completion" and out["model"] == "anthropic.claude-3-haiku-20240307-v1:0"
    choice = out["choices"][0]
    assert choice["finish_reason"] == finish
    assert choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"] == [
        {"id": "tooluse_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}
    ]
    assert usage == Usage(prompt_tokens=30, completion_tokens=7, cached_tokens=15, cache_write_tokens=5)
    assert out["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 7,
        "total_tokens": 37,
        "prompt_tokens_details": {"cached_tokens": 15},
    }


def test_usage_converter_without_cache_fields():
    assert bedrock_usage_to_usage(TokenUsage(inputTokens=12, outputTokens=3)) == Usage(12, 3)


def test_invalid_json_from_bedrock_is_a_502():
    with pytest.raises(UpstreamError) as info:
        decode_response(b"<html>")
    assert info.value.status == 502


def _events(translator: StreamTranslator, events: list[tuple[str, dict]]) -> list[dict]:
    out = []
    for name, payload in events:
        chunk = translator.event(name, msgspec.json.encode({**payload, "p": "abc"}))
        if chunk is not None:
            out.append(msgspec.json.decode(chunk))
    return out


def test_stream_translator_text_tool_calls_finish_and_usage():
    t = StreamTranslator("m")
    chunks = _events(
        t,
        [
            ("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            ("contentBlockStop", {"contentBlockIndex": 0}),
            (
                "contentBlockStart",
                {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather"}}},
            ),
            ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"location":'}}}),
            ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}}),
            ("contentBlockStart", {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_b", "name": "noop"}}}),
            ("contentBlockStop", {"contentBlockIndex": 2}),
            ("messageStop", {"stopReason": "tool_use"}),
        ],
    )
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hi"}
    assert deltas[2]["tool_calls"] == [
        {"index": 0, "id": "tooluse_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    ]
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[2:5]) == '{"location":"Paris"}'
    assert deltas[5]["tool_calls"][0]["index"] == 1 and deltas[5]["tool_calls"][0]["id"] == "tooluse_b"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert not t.finished  # no usage yet
    metadata = {"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}, "metrics": {"latencyMs": 1}}
    assert _events(t, [("metadata", metadata)]) == []
    assert t.finished and t.usage == Usage(5, 2)
    assert msgspec.json.decode(t.usage_chunk(t.usage))["usage"]["total_tokens"] == 7


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "client_status"),
    [
        (429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", 429),
        (403, "AccessDeniedException", 502),
        (403, "UnrecognizedClientException", 502),
        (403, "InvalidSignatureException", 502),
        (400, "ValidationException", 400),
        (404, "ResourceNotFoundException", 404),
        (429, "ModelNotReadyException", 503),
        (503, "ServiceUnavailableException", 503),
        (408, "ModelTimeoutException", 504),
        (424, "ModelErrorException", 502),
        (500, "InternalServerException", 502),
    ],
)
def test_http_errors_map_to_client_statuses(status, error_type, client_status):
    body = b'{"message":"something about live-aws-secret-key-1234"}'
    err = bedrock_http_error(status, body, httpx.Headers({"x-amzn-ErrorType": error_type, "retry-after": "3"}), DEPLOYMENT)
    assert err.status == client_status
    assert "live-aws-secret-key-1234" not in err.message
    if client_status == 429:
        assert err.retry_after == 3.0 and err.code == "rate_limit_exceeded"
    if client_status == 400:
        assert err.message == "something about ***" and err.type == "invalid_request_error"


def test_error_type_from_the_body_when_the_header_is_missing():
    body = b'{"__type":"com.amazon.coral.service#ThrottlingException","Message":"slow"}'
    err = bedrock_http_error(400, body, httpx.Headers(), DEPLOYMENT)
    assert err.status == 429 and err.message == "slow"
    assert error_type_name("throttlingException") == "ThrottlingException"


@pytest.mark.parametrize(
    ("exception_type", "client_status"),
    [
        ("throttlingException", 429),
        ("modelStreamErrorException", 502),
        ("internalServerException", 502),
        ("serviceUnavailableException", 503),
        ("validationException", 400),
    ],
)
def test_stream_exception_frames_map_to_client_statuses(exception_type, client_status):
    headers = {":message-type": "exception", ":exception-type": exception_type, ":content-type": "application/json"}
    err = stream_exception(headers, b'{"message":"went wrong"}', DEPLOYMENT)
    assert err.status == client_status
    unmodelled = {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "x"}
    assert stream_exception(unmodelled, b"", DEPLOYMENT).status == 502


# ---- embeddings -----------------------------------------------------------------------------


def test_titan_embeddings_request_and_response():
    bodies, as_base64 = embeddings_request_to_titan(b'{"model":"e","input":["one two","three"],"dimensions":256}')
    assert [msgspec.json.decode(b) for b in bodies] == [
        {"inputText": "one two", "dimensions": 256},
        {"inputText": "three", "dimensions": 256},
    ]
    assert as_base64 is False
    results = [TitanResponse([0.5, -1.0], 2), TitanResponse([0.25, 2.0], 1)]
    body, tokens = titan_to_embeddings(results, "amazon.titan-embed-text-v2:0", True)
    out = msgspec.json.decode(body)
    assert tokens == 3 and out["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert struct.unpack("<2f", base64.b64decode(out["data"][1]["embedding"])) == (0.25, 2.0)


def test_token_array_input_is_refused_and_models_are_recognised():
    with pytest.raises(UpstreamError) as info:
        embeddings_request_to_titan(b'{"input":[[1,2,3]]}')
    assert info.value.status == 400 and info.value.param == "input"
    assert is_titan_embedding_model("amazon.titan-embed-text-v2:0")
    assert is_titan_embedding_model("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v1")
    assert not is_titan_embedding_model("cohere.embed-english-v3")
