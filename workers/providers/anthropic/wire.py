"""Anthropic Messages API wire types (private to the adapter).

Reference: https://docs.anthropic.com/en/api/messages (Message object, usage),
https://docs.anthropic.com/en/api/messages-streaming (event stream),
https://docs.anthropic.com/en/api/errors (error envelope).
Only the fields the gateway reads are declared; msgspec skips the rest without building them.
"""

from __future__ import annotations

from typing import Any

import msgspec

ANTHROPIC_VERSION = "2023-06-01"  # the `anthropic-version` header sent when nobody chose another
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI clients often leave it out


class AnthropicUsage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class Block(msgspec.Struct):
    """A content block of a Message (text, tool_use, thinking, ...)."""

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None


class Message(msgspec.Struct):
    id: str = ""
    model: str = ""
    content: list[Block] = []
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: AnthropicUsage | None = None


class Delta(msgspec.Struct):
    """`delta` of content_block_delta (text_delta, input_json_delta, ...) or of message_delta."""

    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class ErrorBody(msgspec.Struct):
    type: str = ""
    message: str = ""


class StreamEvent(msgspec.Struct):
    """One server-sent event's data; which fields are set depends on `type`."""

    type: str
    message: Message | None = None
    index: int | None = None
    content_block: Block | None = None
    delta: Delta | None = None
    usage: AnthropicUsage | None = None
    error: ErrorBody | None = None


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody | None = None


class UsageProbe(msgspec.Struct):
    """A whole Message body read only for its usage (native passthrough)."""

    usage: AnthropicUsage | None = None


message_decoder = msgspec.json.Decoder(Message)
event_decoder = msgspec.json.Decoder(StreamEvent)
error_decoder = msgspec.json.Decoder(ErrorEnvelope)
usage_probe_decoder = msgspec.json.Decoder(UsageProbe)
encoder = msgspec.json.Encoder()
