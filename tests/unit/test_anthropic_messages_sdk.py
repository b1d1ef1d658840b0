"""The official `anthropic` SDK reads what the `POST /v1/messages` converters write: an httpx2
MockTransport stands in for the gateway's HTTP layer, so the SDK's own request encoding, SSE
parsing and stream accumulation judge the bytes the edge will send.
"""

from __future__ import annotations

import anthropic
import httpx2  # the HTTP library the anthropic SDK is built on (it refuses plain httpx clients)
import pytest

from gateway.anthropic_messages import (
    StreamTranslator,
    anthropic_error_json,
    chat_completion_to_message,
    messages_to_chat_body,
    parse_messages_request,
)
from tests.unit.anthropic_messages_support import STREAM, chunk, completion, dec, usage_chunk

pytestmark = pytest.mark.unit


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
    with (
        pytest.raises(anthropic.APIStatusError, match="the upstream failed"),
        client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]) as stream,
    ):
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
