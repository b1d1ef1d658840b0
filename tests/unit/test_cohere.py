"""Cohere v2 converters: requests, answers, stream events, usage, errors, native hooks."""

from __future__ import annotations

import base64
import struct

import httpx
import msgspec
import pytest

from llmgw.config import Deployment, Secret
from tests.unit.openai_requests import chat_request, embeddings_request
from workers.providers.cohere import Cohere, CohereUsageReader
from workers.providers.cohere.request import chat_request_to_cohere, embeddings_request_to_cohere
from workers.providers.cohere.response import (
    cohere_embed_to_embeddings,
    cohere_error_to_upstream_error,
    cohere_response_to_chat_completion,
    cohere_usage_to_usage,
)
from workers.providers.cohere.stream import CohereStreamTranslator
from workers.providers.cohere.wire import CohereUsage, chat_decoder, embed_decoder, event_decoder
from workers.providers.errors import UpstreamError
from workers.usage import Usage

pytestmark = pytest.mark.unit

KEY = "co-live-secret-42"
DEPLOYMENT = Deployment(
    id="co/0", model_name="co", provider="cohere", upstream_model="command-r", api_base="http://x", api_key=Secret(KEY)
)
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
}


def decode(raw: bytes) -> dict:
    return msgspec.json.decode(raw)


# ---- requests -----------------------------------------------------------------------------------


def test_messages_keep_their_roles_with_policy_prompts_first():
    body = {
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "function", "name": "legacy", "content": "ok"},
        ]
    }
    out = chat_request_to_cohere(chat_request(body), "command-r", ["Policy one.", "Policy two."], stream=True)
    assert out["model"] == "command-r" and out["stream"] is True
    assert out["messages"] == [
        {"role": "system", "content": "Policy one."},
        {"role": "system", "content": "Policy two."},
        {"role": "system", "content": "Be terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
            ],
        },
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "legacy", "content": "ok"},
    ]


def test_sampling_fields_are_renamed_and_tools_kept_in_their_shape():
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 10,
        "max_completion_tokens": 20,
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 7,
        "stop": "END",
        "presence_penalty": 0.1,
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    }
    out = chat_request_to_cohere(chat_request(body), "m", [], stream=False)
    assert (out["max_tokens"], out["temperature"], out["p"], out["seed"], out["presence_penalty"]) == (20, 0.3, 0.9, 7, 0.1)
    assert out["stop_sequences"] == ["END"] and "top_p" not in out and "stop" not in out
    assert out["tools"] == [WEATHER_TOOL] and out["tool_choice"] == "REQUIRED"
    assert out["response_format"] == {"type": "json_object", "json_schema": {"type": "object"}}


@pytest.mark.parametrize(("choice", "expected"), [("auto", None), ("none", "NONE"), ("required", "REQUIRED")])
def test_tool_choice_maps_to_cohere_values(choice, expected):
    out = chat_request_to_cohere(
        chat_request({"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL], "tool_choice": choice}),
        "m",
        [],
        False,
    )
    assert out.get("tool_choice") == expected


def test_a_named_tool_choice_offers_only_that_tool():
    other = {"type": "function", "function": {"name": "get_time"}}
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [other, WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }
    out = chat_request_to_cohere(chat_request(body), "m", [], False)
    assert [t["function"]["name"] for t in out["tools"]] == ["get_weather"] and out["tool_choice"] == "REQUIRED"
    body["tool_choice"] = {"type": "function", "function": {"name": "missing"}}
    with pytest.raises(UpstreamError) as err:
        chat_request_to_cohere(chat_request(body), "m", [], False)
    assert err.value.status == 400 and err.value.param == "tool_choice"


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "x"}], "n": 2},
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        {"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]},
    ],
)
def test_what_cohere_cannot_express_is_a_400(body):
    with pytest.raises(UpstreamError) as err:
        chat_request_to_cohere(chat_request(body), "m", [], False)
    assert err.value.status == 400


def test_embed_request_asks_for_float_document_embeddings():
    assert embeddings_request_to_cohere(embeddings_request({"input": "one text", "dimensions": 256}), "embed-v4.0") == {
        "model": "embed-v4.0",
        "texts": ["one text"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 256,
    }
    assert (
        embeddings_request_to_cohere(embeddings_request({"input": ["a", "b"], "input_type": "search_query"}), "e")["input_type"]
        == "search_query"
    )
    with pytest.raises(UpstreamError) as err:
        embeddings_request_to_cohere(embeddings_request({"input": [[1, 2, 3]]}), "e")
    assert err.value.status == 400 and err.value.param == "input"


# ---- answers and usage --------------------------------------------------------------------------


def test_usage_prefers_tokens_and_falls_back_to_billed_units():
    both = msgspec.json.decode(
        b'{"billed_units":{"input_tokens":5,"output_tokens":3},"tokens":{"input_tokens":71,"output_tokens":3}}', type=CohereUsage
    )
    assert cohere_usage_to_usage(both) == Usage(71, 3)
    billed = msgspec.json.decode(b'{"billed_units":{"input_tokens":5.0,"output_tokens":3.0}}', type=CohereUsage)
    assert cohere_usage_to_usage(billed) == Usage(5, 3)
    assert cohere_usage_to_usage(CohereUsage()) is None and cohere_usage_to_usage(None) is None


def test_chat_response_becomes_a_chat_completion():
    raw = (
        b'{"id":"abc","finish_reason":"MAX_TOKENS","message":{"role":"assistant","content":['
        b'{"type":"thinking","thinking":"hmm"},{"type":"text","text":"Hello"},{"type":"text","text":" there"}]},'
        b'"usage":{"tokens":{"input_tokens":9,"output_tokens":2}}}'
    )
    resp = chat_decoder.decode(raw)
    out = decode(cohere_response_to_chat_completion(resp, "command-r", cohere_usage_to_usage(resp.usage)))
    assert out["id"] == "abc" and out["object"] == "chat.completion" and out["model"] == "command-r"
    assert out["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "Hello there"},
        "finish_reason": "length",
    }
    assert out["usage"] == {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}


def test_tool_calls_in_an_answer_become_openai_tool_calls():
    raw = (
        b'{"id":"t","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_plan":"I will call it.",'
        b'"tool_calls":[{"id":"get_weather_x1","type":"function","function":{"name":"get_weather","arguments":"{\\"location\\":\\"Paris\\"}"}}]}}'
    )
    out = decode(cohere_response_to_chat_completion(chat_decoder.decode(raw), "m", None))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None and "usage" not in out
    assert choice["message"]["tool_calls"] == [
        {"id": "get_weather_x1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}
    ]


def test_embed_response_becomes_an_embeddings_list_in_floats_or_base64():
    resp = embed_decoder.decode(
        b'{"id":"e","embeddings":{"float":[[0.5,-1.0],[0.25,2.0]]},"meta":{"billed_units":{"input_tokens":4}}}'
    )
    out = decode(cohere_embed_to_embeddings(resp, "embed", False, Usage(4, 0)))
    assert [d["embedding"] for d in out["data"]] == [[0.5, -1.0], [0.25, 2.0]] and [d["index"] for d in out["data"]] == [0, 1]
    assert out["usage"] == {"prompt_tokens": 4, "total_tokens": 4} and out["object"] == "list"
    packed = decode(cohere_embed_to_embeddings(resp, "embed", True, Usage(4, 0)))["data"][1]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(packed)) == (0.25, 2.0)


# ---- stream events ------------------------------------------------------------------------------


def events(*docs: str) -> list:
    return [event_decoder.decode(d.encode()) for d in docs]


TEXT_STREAM = [
    '{"id":"m1","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}',
    '{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}',
    '{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Hi"}}}}',
    '{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":" you"}}}}',
    '{"type":"citation-start","index":0,"delta":{"message":{"citations":{"start":0,"end":2,"text":"Hi"}}}}',
    '{"type":"content-end","index":0}',
    '{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":3,"output_tokens":2},"tokens":{"input_tokens":60,"output_tokens":2}}}}',
]


@pytest.mark.parametrize("include_usage", [False, True])
def test_text_stream_becomes_chunks_then_usage(include_usage):
    translator = CohereStreamTranslator(DEPLOYMENT, "command-r", include_usage)
    items = [item for e in events(*TEXT_STREAM) for item in translator.feed(e)]
    chunks = [decode(i) for i in items if isinstance(i, bytes)]
    assert translator.finished
    assert [c["choices"][0]["delta"] for c in chunks[:3]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {"content": " you"},
    ]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop" and all(c["id"] == "m1" for c in chunks)
    assert [i for i in items if isinstance(i, Usage)] == [Usage(60, 2)]
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
            "prompt_tokens": 60,
            "completion_tokens": 2,
            "total_tokens": 62,
        }
    else:
        assert len(chunks) == 4


def test_tool_call_stream_numbers_calls_and_streams_arguments():
    translator = CohereStreamTranslator(DEPLOYMENT, "m", False)
    docs = [
        '{"id":"m2","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_calls":[]}}}',
        '{"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will"}}}',
        '{"type":"tool-call-start","index":0,"delta":{"message":{"tool_calls":{"id":"a","type":"function","function":{"name":"f","arguments":""}}}}}',
        '{"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\\"x\\":"}}}}}',
        '{"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"1}"}}}}}',
        '{"type":"tool-call-end","index":0}',
        '{"type":"tool-call-start","index":1,"delta":{"message":{"tool_calls":{"id":"b","type":"function","function":{"name":"g","arguments":"{}"}}}}}',
        '{"type":"tool-call-end","index":1}',
        '{"type":"message-end","delta":{"finish_reason":"TOOL_CALL","usage":{"billed_units":{"input_tokens":4,"output_tokens":6}}}}',
    ]
    items = [item for e in events(*docs) for item in translator.feed(e)]
    deltas = [decode(i)["choices"][0]["delta"] for i in items if isinstance(i, bytes)]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls == [
        {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"x":'}},
        {"index": 0, "function": {"arguments": "1}"}},
        {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    finish = [decode(i) for i in items if isinstance(i, bytes)][-1]
    assert finish["choices"][0]["finish_reason"] == "tool_calls" and items[-1] == Usage(4, 6)


def test_thinking_blocks_are_not_relayed_as_content():
    translator = CohereStreamTranslator(DEPLOYMENT, "m", False)
    docs = [
        '{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"thinking","thinking":""}}}}',
        '{"type":"content-delta","index":0,"delta":{"message":{"content":{"thinking":"secret reasoning"}}}}',
        '{"type":"content-end","index":0}',
        '{"type":"content-start","index":1,"delta":{"message":{"content":{"type":"text","text":""}}}}',
        '{"type":"content-delta","index":1,"delta":{"message":{"content":{"text":"Answer"}}}}',
    ]
    chunks = [decode(i) for e in events(*docs) for i in translator.feed(e)]
    assert [c["choices"][0]["delta"] for c in chunks] == [{"content": "Answer"}] and not translator.finished


def test_an_error_at_message_end_fails_the_stream_without_the_key():
    translator = CohereStreamTranslator(DEPLOYMENT, "m", False)
    (event,) = events(f'{{"type":"message-end","delta":{{"finish_reason":"ERROR","error":"bad key {KEY}"}}}}')
    with pytest.raises(UpstreamError) as err:
        translator.feed(event)
    assert err.value.status == 502 and KEY not in err.value.message


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "client_status"),
    [(400, 400), (404, 404), (422, 422), (429, 429), (401, 502), (403, 502), (498, 502), (500, 502), (503, 502)],
)
def test_upstream_errors_map_to_client_statuses(status, client_status):
    body = f'{{"id":"e1","message":"invalid request: key {KEY} is odd"}}'.encode()
    err = cohere_error_to_upstream_error(status, body, httpx.Headers({"retry-after": "2"}), DEPLOYMENT)
    assert err.status == client_status and KEY not in err.message
    if status == 429:
        assert err.retry_after == 2.0 and err.code == "rate_limit_exceeded"
    if status == 400:
        assert err.message == "invalid request: key *** is odd" and err.type == "invalid_request_error"


def test_a_prompt_over_the_context_window_is_flagged_for_fallbacks():
    long_prompt = b'{"message":"too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 4292."}'
    assert cohere_error_to_upstream_error(400, long_prompt, httpx.Headers(), DEPLOYMENT).code == "context_length_exceeded"
    max_tokens = b'{"message":"too many tokens: max tokens must be less than or equal to 4096"}'
    assert cohere_error_to_upstream_error(400, max_tokens, httpx.Headers(), DEPLOYMENT).code is None
    assert "bad gateway" in cohere_error_to_upstream_error(502, b"<html>bad gateway</html>", httpx.Headers(), DEPLOYMENT).message


# ---- native hooks -------------------------------------------------------------------------------


def test_native_usage_reads_chat_bodies_embed_bodies_and_message_end():
    reader = CohereUsageReader()
    reader.body(
        b'{"id":"x","message":{},"usage":{"billed_units":{"input_tokens":2,"output_tokens":5},"tokens":{"input_tokens":8,"output_tokens":5}}}'
    )
    assert reader.usage == Usage(8, 5)
    reader = CohereUsageReader()
    reader.body(b'{"id":"x","embeddings":{"float":[[1.0]]},"meta":{"billed_units":{"input_tokens":7}}}')
    assert reader.usage == Usage(7, 0)
    reader = CohereUsageReader()
    for data in (TEXT_STREAM[2], TEXT_STREAM[-1], b"not json"):
        reader.event(data.encode() if isinstance(data, str) else data)
    assert reader.usage == Usage(60, 2)


def test_native_hooks_put_the_key_in_a_bearer_header_and_swap_the_model():
    provider = Cohere.__new__(Cohere)
    assert provider.native_headers(DEPLOYMENT) == {"authorization": f"Bearer {KEY}"}
    assert provider.native_root(DEPLOYMENT, "command-r") == "http://x"
    assert (
        provider.native_root(msgspec.structs.replace(DEPLOYMENT, api_base="https://api.cohere.ai/v1/"), "m")
        == "https://api.cohere.ai"
    )
    assert decode(provider.native_body(b'{"model":"co","messages":[]}', "command-r")) == {"model": "command-r", "messages": []}
    assert provider.native_body(b"not json", "command-r") == b"not json"
