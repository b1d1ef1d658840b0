"""OpenAI chat answers as the edge reads them when it translates them for another API (the
Responses API, Anthropic's Messages): a whole completion and a stream's chunks, only the fields
a translation uses. Both translations decode with the decoders here, built once.

Reference: https://platform.openai.com/docs/api-reference/chat/object and
https://platform.openai.com/docs/api-reference/chat-streaming/streaming
"""

from __future__ import annotations

from typing import Any

import msgspec


class PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class ChatUsage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None


# ---- a whole completion --------------------------------------------------------------------------


class Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct):
    id: str | None = None
    function: Function | None = None


class Message(msgspec.Struct):
    content: str | list[dict[str, Any]] | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(msgspec.Struct):
    message: Message | None = None
    finish_reason: str | None = None


class Completion(msgspec.Struct):
    id: str | None = None
    choices: list[Choice] | None = None
    usage: ChatUsage | None = None


# ---- a stream's chunks ---------------------------------------------------------------------------


class FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: FunctionDelta | None = None


class Delta(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: Delta | None = None
    finish_reason: str | None = None


class Chunk(msgspec.Struct):
    choices: list[ChunkChoice] | None = None
    usage: ChatUsage | None = None


completion_decoder = msgspec.json.Decoder(Completion)
chunk_decoder = msgspec.json.Decoder(Chunk)
