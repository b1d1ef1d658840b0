"""Cohere v2 wire types (private to the adapter) and the codecs built from them.

Reference: https://docs.cohere.com/reference/chat (response: `message.content[]`, `tool_calls`,
`finish_reason`, `usage.billed_units` / `usage.tokens`), https://docs.cohere.com/reference/chat-stream
(events: `type`, `index`, `delta`), https://docs.cohere.com/reference/embed (v2: `embeddings.float`,
`meta.billed_units`) and https://docs.cohere.com/reference/errors (`{"id", "message"}`).
Only the fields the gateway reads are declared; msgspec skips the rest.
"""

from __future__ import annotations

from typing import Any

import msgspec


class CohereTokens(msgspec.Struct):
    """Token counts; Cohere documents them as numbers (its SDKs type them as floats)."""

    input_tokens: int | float | None = None
    output_tokens: int | float | None = None


class CohereUsage(msgspec.Struct):
    billed_units: CohereTokens | None = None  # what Cohere bills (excludes its own prompt template)
    tokens: CohereTokens | None = None  # what the model processed (the template included)


class Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct):
    id: str | None = None
    type: str | None = None
    function: Function | None = None


class Content(msgspec.Struct):
    """A content block of an assistant message: `text`, or `thinking` for reasoning models."""

    type: str = "text"
    text: str | None = None
    thinking: str | None = None


class AssistantMessage(msgspec.Struct):
    content: list[Content] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_plan: str | None = None


class ChatResponse(msgspec.Struct):
    id: str = ""
    message: AssistantMessage | None = None
    finish_reason: str | None = None
    usage: CohereUsage | None = None


class DeltaMessage(msgspec.Struct):
    """`delta.message` of a stream event: message-start carries empty lists, content and tool
    events one object."""

    content: Content | list[Any] | None = None
    tool_plan: str | None = None
    tool_calls: ToolCall | list[Any] | None = None


class Delta(msgspec.Struct):
    message: DeltaMessage | None = None
    finish_reason: str | None = None
    usage: CohereUsage | None = None
    error: str | None = None


class StreamEvent(msgspec.Struct):
    type: str = ""
    id: str | None = None
    index: int | None = None
    delta: Delta | None = None


class EmbedMeta(msgspec.Struct):
    billed_units: CohereTokens | None = None
    tokens: CohereTokens | None = None


class EmbeddingsByType(msgspec.Struct):
    float_: list[list[float]] | None = msgspec.field(default=None, name="float")


class EmbedResponse(msgspec.Struct):
    id: str = ""
    embeddings: EmbeddingsByType | None = None
    meta: EmbedMeta | None = None


class UsageProbe(msgspec.Struct):
    """A native answer: a chat body has `usage`, an embed body `meta`."""

    usage: CohereUsage | None = None
    meta: EmbedMeta | None = None


class CohereError(msgspec.Struct):
    message: str | None = None


encoder = msgspec.json.Encoder()
chat_decoder = msgspec.json.Decoder(ChatResponse)
event_decoder = msgspec.json.Decoder(StreamEvent)
embed_decoder = msgspec.json.Decoder(EmbedResponse)
usage_probe_decoder = msgspec.json.Decoder(UsageProbe)
error_decoder = msgspec.json.Decoder(CohereError)
