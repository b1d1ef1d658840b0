"""The Anthropic Messages -> OpenAI chat-completions converters behind `POST /v1/messages`: a
request parsed, refused naming the field, and converted (the answers back:
test_anthropic_messages_answers.py; the official SDK: test_anthropic_messages_sdk.py)."""

from __future__ import annotations

import pytest

from gateway.anthropic_messages import (
    messages_to_chat_body,
    parse_messages_request,
)
from gateway.anthropic_messages.request import dotted, parse_envelope
from gateway.errors import GatewayError
from tests.unit.anthropic_messages_support import dec, enc

pytestmark = pytest.mark.unit


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
        (body(messages=[{"role": "developer", "content": "x"}]), "messages[0].role"),
        (
            body(messages=[{"role": "system", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}]),
            "messages[0].content[0].type",
        ),
        (body(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]), "messages[0].content[0].type"),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "search_result"}]}],
                    }
                ]
            ),
            "messages[0].content[0].content[0].type",
        ),
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
    if param:  # worded as Anthropic words it: the field's dotted path first
        assert exc.message.startswith(dotted(param) + ": "), exc.message
        assert "`$." not in exc.message


def test_dotted_paths_are_anthropics():
    assert dotted("messages[0].content[12].type") == "messages.0.content.12.type"
    assert dotted("max_tokens") == "max_tokens"


def test_blocks_only_anthropic_takes_are_refused_naming_them():
    with pytest.raises(GatewayError) as info:
        parse_messages_request(body(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]))
    assert info.value.message == (
        "messages.0.content.0.type: `document` blocks cannot be sent to `claude-x`: only an Anthropic deployment "
        "takes them, and this model is not one"
    )
    with pytest.raises(GatewayError) as info:
        parse_messages_request(body(tools=[{"type": "web_search_20250305", "name": "web_search"}]))
    assert info.value.message.startswith("tools.0.type: server tool `web_search_20250305` cannot be used with `claude-x`")


def test_the_envelope_takes_what_only_anthropic_knows_and_count_tokens_needs_no_max_tokens():
    raw = enc(
        {
            "model": "claude-x",
            "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "f"}}]}],
            "context_management": {"edits": []},
        }
    )
    assert parse_envelope(raw, counting=True).max_tokens is None
    with pytest.raises(GatewayError) as info:
        parse_envelope(raw)
    assert info.value.message == "max_tokens: Field required" and info.value.param == "max_tokens"


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


def test_a_system_message_inside_messages_is_an_openai_system_message_at_its_place():
    chat = to_chat(
        system="first",
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "env a"}, {"type": "text", "text": "env b"}]},
            {"role": "assistant", "content": "hello"},
            {"role": "system", "content": "later"},
            {"role": "user", "content": "go"},
        ],
    )
    assert chat["messages"] == [
        {"role": "system", "content": "first"},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "env a\n\nenv b"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "later"},
        {"role": "user", "content": "go"},
    ]


def test_what_claude_code_sends_besides_is_ignored_and_deferred_tools_are_not_shown():
    schema = {"type": "object", "properties": {"command": {"type": "string"}}}
    chat = to_chat(
        max_tokens=128000,
        stream=True,
        thinking={"type": "adaptive", "display": "omitted"},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        output_config={"effort": "medium"},
        metadata={"user_id": '{"device_id":"d","session_id":"s"}'},
        system=[{"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}],
        tools=[
            {"name": "Bash", "description": "run", "input_schema": schema},
            {"name": "Later", "description": "found by search", "input_schema": {"type": "object"}, "defer_loading": True},
        ],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "run it", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ToolSearch", "input": {"q": "x"}}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "tool_reference", "tool_name": "Later"}],
                    }
                ],
            },
        ],
    )
    assert [t["function"]["name"] for t in chat["tools"]] == ["Bash"]
    assert chat["max_tokens"] == 128000 and chat["stream"] is True and chat["user"] == '{"device_id":"d","session_id":"s"}'
    assert chat["messages"][0] == {"role": "system", "content": "You are an agent."}
    assert chat["messages"][-1] == {"role": "tool", "tool_call_id": "toolu_1", "content": ""}
    assert not {"thinking", "context_management", "output_config"} & set(chat)
