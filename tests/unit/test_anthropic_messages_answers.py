"""The OpenAI chat-completions -> Anthropic Messages converters behind `POST /v1/messages`: whole
answers, streams translated chunk by chunk, errors (the requests: test_anthropic_messages_requests.py)."""

from __future__ import annotations

import pytest

from gateway.anthropic_messages import (
    StreamTranslator,
    anthropic_error_json,
    chat_completion_to_message,
    error_event,
    message_id_for,
)
from gateway.errors import GatewayError
from tests.unit.anthropic_messages_support import STREAM, chunk, completion, dec, parse_sse, usage_chunk

pytestmark = pytest.mark.unit


# -- whole answers -----------------------------------------------------------------------------


def test_completion_with_text_and_tool_calls_becomes_a_message():
    raw = completion(
        {
            "content": "Checking.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "cat"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "broken", "arguments": '{"q": '}},
                {"id": "call_3", "type": "function", "function": {"name": "listy", "arguments": "[1, 2]"}},
            ],
        },
        finish="tool_calls",
        usage={"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107, "prompt_tokens_details": {"cached_tokens": 60}},
    )
    assert dec(chat_completion_to_message(raw, "my-claude")) == {
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "cat"}},
            {"type": "tool_use", "id": "call_2", "name": "broken", "input": {}},
            {"type": "tool_use", "id": "call_3", "name": "listy", "input": {}},
        ],
        "model": "my-claude",
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 40, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60},
    }


@pytest.mark.parametrize(
    ("finish", "tool_calls", "reason"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("tool_calls", True, "tool_use"),
        ("content_filter", False, "refusal"),
        (None, False, "end_turn"),
        ("stop", True, "tool_use"),  # upstreams that end a tool-calling turn with "stop"
    ],
)
def test_finish_reasons_map_to_stop_reasons(finish, tool_calls, reason):
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}] if tool_calls else None
    out = dec(chat_completion_to_message(completion({"content": "x", "tool_calls": calls}, finish), "m"))
    assert out["stop_reason"] == reason and out["stop_sequence"] is None


def test_empty_answer_without_usage_or_id():
    out = dec(chat_completion_to_message(completion({"content": ""}, id=""), "m"))
    assert out["content"] == [] and out["id"].startswith("msg_") and len(out["id"]) > 4
    assert out["usage"] == {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    assert message_id_for("chatcmpl-xyz") == "msg_xyz"


def test_unreadable_completion_is_an_upstream_error():
    with pytest.raises(GatewayError) as info:
        chat_completion_to_message(b"<html>", "m")
    assert info.value.status == 502


# -- streams -----------------------------------------------------------------------------------


def test_stream_is_translated_chunk_by_chunk():
    t = StreamTranslator("my-claude", "msg_1")
    out = [t.feed(c) for c in STREAM[:-1]]
    first = parse_sse(out[0])
    assert [name for name, _ in first] == ["message_start"]
    assert first[0][1]["message"] == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "my-claude",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    assert parse_sse(out[1]) == [
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
    ]
    assert parse_sse(out[3]) == [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "call_w", "name": "get_weather", "input": {}},
            },
        ),
    ]
    assert parse_sse(out[4]) == [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
        ),
    ]
    # the finish chunk closes the block but the message waits for the usage chunk
    assert parse_sse(out[6]) == [("content_block_stop", {"type": "content_block_stop", "index": 1})]
    assert not t.done
    assert parse_sse(t.feed(STREAM[-1])) == [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {
                    "input_tokens": 100,
                    "output_tokens": 25,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 20,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    assert t.done and t.feed(chunk({"content": "late"})) == b"" and t.finish() == b"" and t.error_event("x") == b""


def test_finish_closes_a_stream_that_sent_no_usage_chunk():
    t = StreamTranslator("m", "msg_2")
    events = parse_sse(t.feed(chunk({"content": "Hi"})) + t.feed(chunk({}, finish="length")) + t.finish())
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[4][1]["delta"]["stop_reason"] == "max_tokens" and events[4][1]["usage"] == {"output_tokens": 0}


def test_finish_on_a_cut_stream_closes_the_open_block_and_names_pending_tools():
    t = StreamTranslator("m", "msg_3")
    t.feed(chunk({"tool_calls": [{"index": 0, "id": "c0", "function": {"name": "a", "arguments": '{"x": 1}'}}]}))
    # a second call whose arguments arrive before its name: buffered until the name comes
    buffered = t.feed(chunk({"tool_calls": [{"index": 1, "id": "c1", "function": {"arguments": '{"y"'}}]}))
    assert buffered == b""
    events = parse_sse(t.feed(chunk({"tool_calls": [{"index": 1, "function": {"name": "b", "arguments": ": 2}"}}]})) + t.finish())
    assert events == [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "c1", "name": "b", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"y": 2}'}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 0}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_finish_without_any_chunk_is_still_a_whole_message():
    names = [name for name, _ in parse_sse(StreamTranslator("m", "msg_4").finish())]
    assert names == ["message_start", "message_delta", "message_stop"]


def test_usage_before_finish_waits_for_the_finish_chunk_and_junk_is_skipped():
    t = StreamTranslator("m", "msg_5")
    assert [n for n, _ in parse_sse(t.feed(chunk({"content": "a"})))] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]
    assert t.feed(b"not json") == b""
    assert t.feed(usage_chunk(3, 1)) == b"" and not t.done
    events = parse_sse(t.feed(chunk({}, finish="stop")))
    assert [n for n, _ in events] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[1][1]["delta"]["stop_reason"] == "end_turn" and events[1][1]["usage"]["input_tokens"] == 3


def test_error_event_and_error_bodies():
    t = StreamTranslator("m", "msg_6")
    t.feed(chunk({"content": "a"}))
    assert parse_sse(t.error_event("upstream died", "overloaded_error")) == [
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "upstream died"}})
    ]
    assert t.done and t.finish() == b"" and t.ping() == b""
    assert parse_sse(StreamTranslator("m", "x").ping()) == [("ping", {"type": "ping"})]
    assert parse_sse(error_event("boom")) == [("error", {"type": "error", "error": {"type": "api_error", "message": "boom"}})]


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_json_maps_status_to_type(status, etype):
    assert dec(anthropic_error_json(status, "why")) == {"type": "error", "error": {"type": etype, "message": "why"}}
    assert dec(anthropic_error_json(status, "why", "req-1"))["request_id"] == "req-1"
