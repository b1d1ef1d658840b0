"""The OpenAI chat completions and embeddings requests, typed, as every translating adapter reads them.

Reference: https://platform.openai.com/docs/api-reference/chat/create and /embeddings/create.
The edge has validated the fields it relies on (gateway.schemas); these types are lenient where
clients differ (content as a string or parts, a tool call's arguments as a JSON string or an
object) so that an adapter, not the decoder, says what its provider cannot take. A few fields
some providers' clients send in an OpenAI body are declared too (`top_k`, Cohere's `input_type`).
Unknown fields are skipped; the OpenAI family forwards the body as a dict instead (see
`workers.providers.request_body`).
"""

from __future__ import annotations

from typing import Any

import msgspec


class ImageURL(msgspec.Struct, frozen=True):
    url: str | None = None
    detail: str | None = None


class FileRef(msgspec.Struct, frozen=True):
    """A `file` part: `file_data` is a data: URL (or a provider's file id)."""

    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class InputAudio(msgspec.Struct, frozen=True):
    data: str | None = None
    format: str | None = None


class ContentPart(msgspec.Struct, frozen=True):
    """One part of a message's content: text, image_url, input_audio, file, ..."""

    type: str | None = None
    text: str | None = None
    image_url: ImageURL | str | None = None
    input_audio: InputAudio | None = None
    file: FileRef | None = None
    cache_control: dict[str, Any] | None = None  # (Anthropic prompt caching, sent by some clients)


Content = str | list[ContentPart] | None


class FunctionCall(msgspec.Struct, frozen=True):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None  # a JSON string (some clients send the object)


class ToolCall(msgspec.Struct, frozen=True):
    id: str | None = None
    type: str = "function"
    function: FunctionCall | None = None


class ChatMessage(msgspec.Struct, frozen=True):
    role: str = ""
    content: Content = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None  # the legacy single function call


class FunctionDef(msgspec.Struct, frozen=True):
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(msgspec.Struct, frozen=True):
    type: str = "function"
    function: FunctionDef | None = None
    cache_control: dict[str, Any] | None = None


class NamedFunction(msgspec.Struct, frozen=True):
    name: str | None = None


class NamedToolChoice(msgspec.Struct, frozen=True):
    """`{"type": "function", "function": {"name": ...}}`"""

    type: str = "function"
    function: NamedFunction | None = None


class JsonSchemaFormat(msgspec.Struct, frozen=True):
    name: str | None = None
    description: str | None = None
    schema: Any = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, frozen=True):
    type: str | None = None  # text, json_object, json_schema
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(msgspec.Struct, frozen=True):
    include_usage: bool | None = None


class ChatRequest(msgspec.Struct, frozen=True):
    model: str = ""
    messages: list[ChatMessage] = []
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[Tool] | None = None
    tool_choice: str | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None

    def completion_limit(self) -> int | None:
        """The lower of `max_tokens` and `max_completion_tokens` (a cost cap may have lowered either)."""
        limits = [v for v in (self.max_completion_tokens, self.max_tokens) if v is not None]
        return min(limits) if limits else None


class EmbeddingsRequest(msgspec.Struct, frozen=True):
    model: str = ""
    input: str | list[str | int | list[int]] = ""
    dimensions: int | None = None
    encoding_format: str | None = None
    user: str | None = None
    input_type: str | None = None  # (Cohere's: search_document, search_query, ...)

    def texts(self) -> list[str] | None:
        """The input as a list of texts; None when it is not text (token arrays) or empty."""
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts or not all(isinstance(t, str) for t in texts):
            return None
        return texts  # type: ignore[return-value]


def text_of(content: Content, separator: str = "") -> str:
    """The text of a message's content: the string, or its text parts joined."""
    if isinstance(content, str):
        return content
    return separator.join(p.text or "" for p in content or () if p.type == "text")


chat_request_decoder = msgspec.json.Decoder(ChatRequest)
embeddings_request_decoder = msgspec.json.Decoder(EmbeddingsRequest)
