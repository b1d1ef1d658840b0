"""The Anthropic Messages <-> OpenAI chat-completions converters behind `POST /v1/messages`.

The last tests hand the converters' output to the official `anthropic` SDK: an httpx2
MockTransport stands in for the gateway's HTTP layer, so the SDK's own request encoding, SSE
parsing and stream accumulation judge the bytes the edge will send.
"""

from __future__ import annotations

import anthropic
import httpx2  # the HTTP library the anthropic SDK is built on (it refuses plain httpx clients)
import msgspec
import pytest

from gateway.anthropic_messages import (
    StreamTranslator,
    anthropic_error_json,
    chat_completion_to_message,
    error_event,
    message_id_for,
    messages_to_chat_body,
    parse_messages_request,
)
from gateway.errors import GatewayError

pytestmark = pytest.mark.unit

enc = msgspec.json.encode
dec = msgspec.json.decode


def body(**fields) -> bytes:
    base = {"model": "claude-x", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return enc(base)


def to_chat(**fields) -> dict:
    return dec(messages_to_chat_body(parse_messages_request(body(**fields))))


# -- request parsing ---------------------------------------------------------------------------


def test_parse_reads_every_documented_field():
    req = parse_messages_request(
        body(
            system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            stop_sequences=["END"],
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            stream=True,
            tools=[{"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "get_weather"},
            metadata={"user_id": "u-1"},
            thinking={"type": "disabled"},  # unknown to the converter: ignored, not refused
        )
    )
    assert (req.model, req.max_tokens, req.stream, req.top_k, req.stop_sequences) == ("claude-x", 64, True, 40, ["END"])
    assert req.system[0].text == "be brief" and req.tools[0].input_schema == {"type": "object"}
    assert req.tool_choice.name == "get_weather" and req.metadata.user_id == "u-1"


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"model": "m", "max_tokens": 5, "messages": [', None),
        (enc({"model": "m", "messages": [{"role": "user", "content": "x"}]}), "max_tokens"),
        (body(max_tokens="5"), "max_tokens"),
        (body(max_tokens=0), "max_tokens"),
        (body(messages=[]), "messages"),
        (body(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
        (body(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (body(messages=[{"role": "user", "content": [{"type": "video"}]}]), "messages[0].content[0].type"),
        (
            body(messages=[{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]),
            "messages[0].content[0].type",
        ),
        (
            body(
                messages=[
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
                ]
            ),
            "messages[1].content[0].type",
        ),
        (
            body(messages=[{"role": "assistant", "content": [{"type": "image", "source": {"type": "url", "url": "http://i"}}]}]),
            "messages[0].content[0].type",
        ),
        (body(temperature=1.5), "temperature"),
        (body(tools=[{"name": "f"}]), "tools[0].input_schema"),
        (body(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools[0].type"),
        (body(tool_choice={"type": "sometimes"}), "tool_choice.type"),
    ],
)
def test_parse_refuses_bad_requests_naming_the_field(raw, param):
    with pytest.raises(GatewayError) as info:
        parse_messages_request(raw)
    exc = info.value
    assert (exc.status, exc.type, exc.code, exc.param) == (400, "invalid_request_error", "invalid_request_error", param)
    if param:
        assert f"`$.{param}`" in exc.message or (f"`{param}`" in exc.message and "missing" in exc.message)


# -- request conversion ------------------------------------------------------------------------


def test_conversation_becomes_openai_messages():
    chat = to_chat(
        system=[{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat", "n": 2}},
                    {"type": "tool_use", "id": "toolu_2", "name": "shot", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "here you go"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [
                            {"type": "text", "text": "camera"},
                            {"type": "text", "text": "offline"},
                            {"type": "image", "source": {"type": "url", "url": "https://x/err.png"}},
                        ],
                    },
                ],
            },
            {"role": "assistant", "content": "Plain text answer."},
        ],
    )
    assert chat["model"] == "claude-x" and chat["max_tokens"] == 64
    assert chat["messages"] == [
        {"role": "system", "content": "one\n\ntwo"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"cat","n":2}'}},
                {"id": "toolu_2", "type": "function", "function": {"name": "shot", "arguments": "{}"}},
            ],
        },
        # tool results first (they must follow the tool calls), then the rest of the user turn
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: camera\noffline"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "here you go"},
                {"type": "image_url", "image_url": {"url": "https://x/err.png"}},
            ],
        },
        {"role": "assistant", "content": "Plain text answer."},
    ]
    assert "stream" not in chat and "tools" not in chat and "stop" not in chat


def test_assistant_with_only_tool_calls_has_null_content_and_tool_results_alone_make_no_user_message():
    chat = to_chat(
        system="sys",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "w", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1"}]},
        ],
    )
    assert chat["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Oslo"}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": ""},
    ]


def test_sampling_fields_tools_and_streaming_are_converted():
    chat = to_chat(
        stop_sequences=["END", "STOP"],
        temperature=0.2,
        top_p=0.7,
        top_k=5,
        stream=True,
        metadata={"user_id": "u-9"},
        tools=[
            {
                "name": "lookup",
                "description": "Find things",
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
            {"name": "bare", "input_schema": {"type": "object"}, "type": "custom"},
        ],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert chat["stop"] == ["END", "STOP"] and chat["temperature"] == 0.2 and chat["top_p"] == 0.7
    assert chat["user"] == "u-9" and "top_k" not in chat
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Find things",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "bare", "parameters": {"type": "object"}}},
    ]
    assert chat["tool_choice"] == "auto" and chat["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "tool", "name": "lookup"}, {"type": "function", "function": {"name": "lookup"}}),
        ({"type": "none"}, "none"),
    ],
)
def test_tool_choice_maps_to_openai(choice, expected):
    chat = to_chat(tools=[{"name": "lookup", "input_schema": {"type": "object"}}], tool_choice=choice)
    assert chat["tool_choice"] == expected and "parallel_tool_calls" not in chat


def test_tool_choice_without_tools_is_dropped():
    assert "tool_choice" not in to_chat(tool_choice={"type": "none"})


# -- whole answers -----------------------------------------------------------------------------


def completion(message: dict, finish: str | None = "stop", usage: dict | None = None, id: str = "chatcmpl-abc123") -> bytes:
    doc = {
        "id": id,
        "object": "chat.completion",
        "created": 1,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
    }
    if usage is not None:
        doc["usage"] = usage
    return enc(doc)


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


def chunk(delta: dict | None = None, finish: str | None = None) -> bytes:
    return enc(
        {
            "id": "chatcmpl-s1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "upstream-model",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        }
    )


def usage_chunk(prompt: int, completion: int, cached: int = 0) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return enc(
        {
            "id": "chatcmpl-s1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "upstream-model",
            "choices": [],
            "usage": usage,
        }
    )


STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me "}),
    chunk({"content": "check."}),
    chunk(
        {"tool_calls": [{"index": 0, "id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo", "days": 3}'}}]}),
    chunk({}, finish="tool_calls"),
    usage_chunk(120, 25, cached=20),
]


def parse_sse(data: bytes) -> list[tuple[str, dict]]:
    """The (event name, JSON data) pairs of an SSE byte string, checking Anthropic's framing."""
    events = []
    for frame in data.split(b"\n\n"):
        if not frame:
            continue
        name_line, data_line = frame.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        payload = dec(data_line[len(b"data: ") :])
        assert payload["type"] == name_line[len(b"event: ") :].decode()
        events.append((payload["type"], payload))
    assert data.endswith(b"\n\n") or not data
    return events


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


# -- the official SDK reads what the converters write -----------------------------------------


class Gateway:
    """The edge's conversion steps around a canned upstream answer, behind an httpx transport."""

    def __init__(self, chunks: list[bytes] | None = None, answer: bytes | None = None, status: int = 200) -> None:
        self.chunks, self.answer, self.status = chunks, answer, status
        self.chat_bodies: list[dict] = []
        self.api_keys: list[str] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        assert request.method == "POST" and request.url.path == "/v1/messages"
        # older anthropic SDKs send `x-api-key`; this one (2.x) sends `authorization: Bearer`
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.api_keys.append(request.headers.get("x-api-key") or bearer)
        if self.status != 200:
            return httpx2.Response(
                self.status, content=anthropic_error_json(self.status, "slow down"), headers={"content-type": "application/json"}
            )
        parsed = parse_messages_request(request.content)
        self.chat_bodies.append(dec(messages_to_chat_body(parsed)))
        if parsed.stream:
            translator = StreamTranslator(parsed.model, "msg_stream1")
            events = b"".join(translator.feed(c) for c in self.chunks) + translator.finish()
            return httpx2.Response(200, content=events, headers={"content-type": "text/event-stream"})
        return httpx2.Response(
            200, content=chat_completion_to_message(self.answer, parsed.model), headers={"content-type": "application/json"}
        )

    def client(self) -> anthropic.Anthropic:
        http = httpx2.Client(transport=httpx2.MockTransport(self.handle))
        return anthropic.Anthropic(base_url="http://gateway.test", api_key="vk-virtual", http_client=http, max_retries=0)


TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather by city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}},
    }
]


def test_sdk_accumulates_the_translated_stream():
    gw = Gateway(chunks=STREAM)
    with gw.client().messages.stream(
        model="my-claude",
        max_tokens=100,
        system="be brief",
        tools=TOOLS,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert gw.api_keys == ["vk-virtual"]
    sent = gw.chat_bodies[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert (
        sent["messages"][0] == {"role": "system", "content": "be brief"} and sent["tools"][0]["function"]["name"] == "get_weather"
    )
    assert texts == ["Let me ", "check."]
    assert final.id == "msg_stream1" and final.model == "my-claude" and final.role == "assistant"
    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Let me check."
    tool = final.content[1]
    assert (tool.id, tool.name, tool.input) == ("call_w", "get_weather", {"city": "Oslo", "days": 3})
    assert final.stop_reason == "tool_use" and final.stop_sequence is None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (100, 25, 20)


def test_sdk_raw_stream_events_arrive_in_anthropic_order():
    gw = Gateway(chunks=[chunk({"content": "Hello"}), chunk({}, finish="stop"), usage_chunk(9, 1)])
    events = gw.client().messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True)
    types = [event.type for event in events]
    assert types == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_sdk_raises_on_a_stream_error_event():
    t = StreamTranslator("m", "msg_e")
    data = t.feed(chunk({"content": "partial"})) + t.error_event("the upstream failed", "api_error")
    http = httpx2.Client(
        transport=httpx2.MockTransport(
            lambda _: httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})
        )
    )
    client = anthropic.Anthropic(base_url="http://gateway.test", api_key="x", http_client=http, max_retries=0)
    with pytest.raises(anthropic.APIStatusError, match="the upstream failed"):
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]) as stream:
            stream.get_final_message()


def test_sdk_reads_a_whole_translated_message_and_round_trips_the_tool_result():
    answer = completion(
        {
            "content": None,
            "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
            ],
        },
        finish="tool_calls",
        usage={"prompt_tokens": 50, "completion_tokens": 12, "prompt_tokens_details": {"cached_tokens": 8}},
    )
    gw = Gateway(answer=answer)
    client = gw.client()
    message = client.messages.create(
        model="my-claude",
        max_tokens=100,
        tools=TOOLS,
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather?"}],
    )
    assert message.id == "msg_abc123" and message.model == "my-claude" and message.stop_reason == "tool_use"
    assert len(message.content) == 1 and message.content[0].type == "tool_use"
    assert (message.content[0].id, message.content[0].input) == ("call_9", {"city": "Oslo"})
    assert (message.usage.input_tokens, message.usage.output_tokens, message.usage.cache_read_input_tokens) == (42, 12, 8)
    assert gw.chat_bodies[0]["tool_choice"] == "required" and "stream" not in gw.chat_bodies[0]

    # the client sends the tool result back, replaying the assistant turn the SDK parsed
    client.messages.create(
        model="my-claude",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": message.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_9", "content": "sunny"}]},
        ],
    )
    assert gw.chat_bodies[1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
    ]


def test_sdk_reads_an_anthropic_error_body():
    with pytest.raises(anthropic.RateLimitError) as info:
        Gateway(status=429).client().messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert info.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
