"""The Responses API translated to and from chat completions (gateway/responses): requests,
whole answers and streams, checked against the official SDK's own types."""

from __future__ import annotations

import json

import msgspec
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.errors import GatewayError
from gateway.responses.items import input_items
from gateway.responses.reply import chat_completion_to_response
from gateway.responses.request import parse_responses_request
from gateway.responses.stream import ResponsesStreamTranslator
from gateway.responses.to_chat import responses_to_chat

pytestmark = pytest.mark.unit

EVENT = TypeAdapter(ResponseStreamEvent)


def chat_of(body: dict, history: list[dict] | None = None) -> dict:
    request, _ = parse_responses_request(json.dumps(body).encode())
    assert request.input is not None
    items = [(item, "previous_response_id") for item in history or []]
    items += [(item, f"input[{i}]") for i, item in enumerate(input_items(request.input))]
    return responses_to_chat(request, items, request.model)


def refusal(body: dict) -> GatewayError:
    with pytest.raises(GatewayError) as err:
        chat_of(body)
    assert err.value.status == 400
    return err.value


# ---- requests ------------------------------------------------------------------------------------


def test_a_string_input_with_instructions_and_the_sampling_fields() -> None:
    chat = chat_of(
        {
            "model": "m",
            "input": "hello",
            "instructions": "be brief",
            "max_output_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "user": "u1",
            "metadata": {"a": "b"},
            "reasoning": {"effort": "low", "summary": "auto"},
            "include": ["reasoning.encrypted_content"],
            "stream": True,
        }
    )
    assert chat["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    assert (chat["max_completion_tokens"], chat["temperature"], chat["top_p"], chat["user"]) == (50, 0.5, 0.9, "u1")
    assert chat["reasoning_effort"] == "low"
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert "metadata" not in chat and "include" not in chat


def test_message_items_images_and_roles() -> None:
    chat = chat_of(
        {
            "model": "m",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "a cat"}]},
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "rules"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {"role": "assistant", "content": "a cat"},
    ]


def test_function_calls_and_their_outputs_become_tool_calls_and_tool_messages() -> None:
    history = [
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": []},  # dropped
        {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "checking"}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
    ]
    chat = chat_of(
        {
            "model": "m",
            "input": [
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]},
            ],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": True}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": False,
        },
        history,
    )
    assert chat["messages"] == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "checking",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
    ]
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}, "strict": True}}
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True},
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True}},
        ),
    ],
)
def test_text_format_becomes_response_format(fmt: dict, expected: dict | None) -> None:
    chat = chat_of({"model": "m", "input": "hi", "text": {"format": fmt, "verbosity": "low"}})
    assert chat.get("response_format") == expected


@pytest.mark.parametrize(
    ("body", "param", "named"),
    [
        ({"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[0].type", "file_search"),
        ({"tools": [{"type": "computer_use_preview"}]}, "tools[0].type", "computer_use_preview"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_data": "x"}]}]},
            "input[0].content[0].type",
            "input_file",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "input[0].content[0]", "file_id"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type", "web_search_call"),
        (
            {"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "file_search"}},
            "tool_choice.type",
            "file_search",
        ),
    ],
)
def test_what_chat_cannot_take_is_refused_naming_it(body: dict, param: str, named: str) -> None:
    error = refusal({"model": "claude-x", "input": "hi", **body})
    assert (error.param, error.code) == (param, "unsupported_value")
    assert named in error.message and "claude-x" in error.message


def test_an_item_of_a_stored_conversation_that_chat_cannot_take_names_previous_response_id() -> None:
    request, _ = parse_responses_request(b'{"model": "m", "input": "go on"}')
    with pytest.raises(GatewayError) as err:
        responses_to_chat(request, [({"type": "web_search_call", "id": "ws_1"}, "previous_response_id")], "m")
    assert err.value.param == "previous_response_id" and "web_search_call" in err.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "m"}', "input"),
        (b'{"model": "m", "input": [{"role": "bot", "content": "x"}]}', "input[0].role"),
        (b'{"model": "m", "input": [{"content": "x", "type": "function_call_output"}]}', "input[0].call_id"),
        (b'{"model": "m", "input": [{"foo": 1}]}', "input[0].type"),
        (b'{"model": "m", "input": ["text"]}', "input[0]"),
        (b'{"model": "m", "input": "x", "conversation": "conv_1"}', "conversation"),
        (b'{"model": "", "input": "x"}', "model"),
    ],
)
def test_bad_bodies_name_the_field(body: bytes, param: str) -> None:
    with pytest.raises(GatewayError) as err:
        request, _ = parse_responses_request(body)
        input_items(request.input or "")
    assert (err.value.status, err.value.param) == (400, param)


# ---- whole answers ---------------------------------------------------------------------------------


def test_a_chat_completion_becomes_a_response_the_sdk_reads() -> None:
    request, _ = parse_responses_request(b'{"model": "claude", "input": "hi", "instructions": "be brief", "store": false}')
    completion = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 3},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    }
    response = Response.model_validate(chat_completion_to_response(json.dumps(completion).encode(), request, "claude", "resp_1"))
    assert (response.id, response.status, response.model, response.store) == ("resp_1", "completed", "claude", False)
    assert response.instructions == "be brief" and response.output_text == "Let me check."
    call = response.output[1]
    assert call.type == "function_call" and (call.call_id, call.name, call.arguments) == ("call_1", "f", '{"a":1}')
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (10, 5, 15)
    assert response.usage.input_tokens_details.cached_tokens == 3
    assert response.usage.output_tokens_details.reasoning_tokens == 2


def test_an_answer_cut_by_its_length_is_incomplete() -> None:
    request, _ = parse_responses_request(b'{"model": "m", "input": "hi", "max_output_tokens": 2}')
    body = b'{"choices": [{"message": {"content": "w0 w1"}, "finish_reason": "length"}]}'
    response = chat_completion_to_response(body, request, "m", "resp_2")
    assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": "max_output_tokens"}


def test_an_unreadable_chat_answer_is_a_502() -> None:
    request, _ = parse_responses_request(b'{"model": "m", "input": "hi"}')
    with pytest.raises(GatewayError) as err:
        chat_completion_to_response(b"not json", request, "m", "resp_3")
    assert err.value.status == 502


# ---- streams ---------------------------------------------------------------------------------------


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return json.dumps({"choices": choices, **({"usage": usage} if usage else {})}).encode()


def events_of(data: bytes) -> list[dict]:
    out = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        name, payload = block.split("\n", 1)
        event = json.loads(payload.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        EVENT.validate_python(event)  # as the SDK reads it
        out.append(event)
    return out


def test_a_chat_stream_becomes_typed_events() -> None:
    request, _ = parse_responses_request(b'{"model": "claude", "input": "hi", "stream": true}')
    translator = ResponsesStreamTranslator(request, "claude", "resp_9")
    data = b"".join(
        translator.feed(c)
        for c in (
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Let me"}),
            chunk({"content": " check."}),
            chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"loc'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ation":"Paris"}'}}]}),
            chunk(finish="tool_calls"),
            chunk(usage={"prompt_tokens": 7, "completion_tokens": 13}),
        )
    )
    data += translator.finish()  # (already ended: nothing more)
    events = events_of(data)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = Response.model_validate(events[-1]["response"])
    assert final.id == "resp_9" and final.output_text == "Let me check."
    call = final.output[1]
    assert call.type == "function_call" and call.call_id == "call_1" and json.loads(call.arguments) == {"location": "Paris"}
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (7, 13)
    assert events[9]["item"]["id"] == events[13]["item"]["id"] == call.id  # one identity from added to done
    assert translator.final == events[-1]["response"]


def test_a_stream_without_a_usage_chunk_ends_at_finish() -> None:
    request, _ = parse_responses_request(b'{"model": "m", "input": "hi", "stream": true}')
    translator = ResponsesStreamTranslator(request, "m", "resp_4")
    data = translator.feed(chunk({"content": "w0"})) + translator.feed(chunk(finish="length")) + translator.finish()
    events = events_of(data)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_failed_stream_ends_with_error_and_response_failed() -> None:
    request, _ = parse_responses_request(b'{"model": "m", "input": "hi", "stream": true}')
    translator = ResponsesStreamTranslator(request, "m", "resp_5")
    data = translator.feed(chunk({"content": "w0"})) + translator.error("the upstream broke off", "upstream_error")
    events = events_of(data)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == "upstream_error" and events[-1]["response"]["status"] == "failed"
    assert translator.final is None and translator.finish() == b"" and translator.feed(chunk({"content": "x"})) == b""


def test_an_unreadable_chunk_is_skipped() -> None:
    request, _ = parse_responses_request(b'{"model": "m", "input": "hi", "stream": true}')
    translator = ResponsesStreamTranslator(request, "m", "resp_6")
    assert translator.feed(b"{not json") == b""
    assert msgspec.json.decode(translator.finish().split(b"data: ")[-1])["type"] == "response.completed"
