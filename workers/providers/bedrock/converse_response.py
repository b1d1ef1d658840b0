"""Bedrock Converse answers as OpenAI chat completions, whole or streamed.

References: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
(output.message, stopReason, usage: TokenUsage) and
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
(messageStart, contentBlockStart, contentBlockDelta, contentBlockStop, messageStop, metadata).
Bedrock's `inputTokens` leave out the tokens read from or written to the prompt cache, so the
prompt of the OpenAI usage (and of `Usage`) is their sum.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from workers.providers.errors import invalid_answer
from workers.usage import Usage, usage_to_openai

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# ---- wire types -------------------------------------------------------------------------------


class TokenUsage(msgspec.Struct):
    inputTokens: int = 0
    outputTokens: int = 0
    totalTokens: int = 0
    cacheReadInputTokens: int | None = None
    cacheWriteInputTokens: int | None = None


class _ToolUse(msgspec.Struct):
    toolUseId: str = ""
    name: str = ""
    input: Any = None


class _ReasoningText(msgspec.Struct):
    text: str = ""


class _ReasoningContent(msgspec.Struct):
    reasoningText: _ReasoningText | None = None


class _Block(msgspec.Struct):
    text: str | None = None
    toolUse: _ToolUse | None = None
    reasoningContent: _ReasoningContent | None = None


class _Message(msgspec.Struct):
    role: str = "assistant"
    content: list[_Block] = []


class _Output(msgspec.Struct):
    message: _Message | None = None


class ConverseResponse(msgspec.Struct):
    output: _Output = msgspec.field(default_factory=_Output)
    stopReason: str = "end_turn"
    usage: TokenUsage | None = None


class _StartToolUse(msgspec.Struct):
    toolUseId: str = ""
    name: str = ""


class _Start(msgspec.Struct):
    toolUse: _StartToolUse | None = None


class _DeltaToolUse(msgspec.Struct):
    input: str = ""


class _DeltaReasoning(msgspec.Struct):
    text: str | None = None


class _Delta(msgspec.Struct):
    text: str | None = None
    toolUse: _DeltaToolUse | None = None
    reasoningContent: _DeltaReasoning | None = None


class StreamEvent(msgspec.Struct):
    """The payload of any ConverseStream event: each event type fills its own fields."""

    role: str | None = None  # messageStart
    contentBlockIndex: int = 0  # contentBlockStart / Delta / Stop
    start: _Start | None = None
    delta: _Delta | None = None
    stopReason: str | None = None  # messageStop
    usage: TokenUsage | None = None  # metadata
    message: str | None = None  # exceptions


_response_decoder = msgspec.json.Decoder(ConverseResponse)
_event_decoder = msgspec.json.Decoder(StreamEvent)
_encoder = msgspec.json.Encoder()

# ---- converters -------------------------------------------------------------------------------


def bedrock_usage_to_usage(u: TokenUsage) -> Usage:
    read, write = u.cacheReadInputTokens or 0, u.cacheWriteInputTokens or 0
    return Usage(
        prompt_tokens=u.inputTokens + read + write,
        completion_tokens=u.outputTokens,
        cached_tokens=read,
        cache_write_tokens=write,
    )


def stop_reason_to_finish(reason: str | None) -> str:
    return STOP_REASONS.get(reason or "end_turn", "stop")


def completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def decode_response(content: bytes) -> ConverseResponse:
    try:
        return _response_decoder.decode(content)
    except msgspec.DecodeError:
        raise invalid_answer("Bedrock answered with invalid JSON") from None


def converse_response_to_chat(response: ConverseResponse, model: str) -> tuple[bytes, Usage | None]:
    """(an OpenAI chat.completion body, the usage) of a Converse answer."""
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in response.output.message.content if response.output.message else []:
        if block.text is not None:
            texts.append(block.text)
        elif block.toolUse is not None:
            args = _encoder.encode(block.toolUse.input if block.toolUse.input is not None else {}).decode()
            tool_calls.append(
                {"id": block.toolUse.toolUseId, "type": "function", "function": {"name": block.toolUse.name, "arguments": args}}
            )
        elif block.reasoningContent is not None and block.reasoningContent.reasoningText is not None:
            reasoning.append(block.reasoningContent.reasoningText.text)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    usage = bedrock_usage_to_usage(response.usage) if response.usage is not None else None
    body: dict[str, Any] = {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": stop_reason_to_finish(response.stopReason)}
        ],
    }
    if usage is not None:
        body["usage"] = usage_to_openai(usage)
    return _encoder.encode(body), usage


class StreamTranslator:
    """ConverseStream events -> OpenAI chat.completion.chunk documents, for one stream.

    Tool-use blocks are numbered in the order they start (OpenAI's `tool_calls[].index`); the
    stream is whole once `messageStop` and `metadata` (the usage) have both arrived."""

    def __init__(self, model: str) -> None:
        self._base = {"id": completion_id(), "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        self._tool_index: dict[int, int] = {}
        self.stopped = False
        self.usage: Usage | None = None

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return _encoder.encode({**self._base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    def usage_chunk(self, usage: Usage) -> bytes:
        return _encoder.encode({**self._base, "choices": [], "usage": usage_to_openai(usage)})

    @property
    def finished(self) -> bool:
        return self.stopped and self.usage is not None

    def event(self, event_type: str, payload: bytes) -> bytes | None:
        """The chunk an event becomes (None: nothing to tell the client). Sets `usage` on metadata."""
        try:
            ev = _event_decoder.decode(payload)
        except msgspec.DecodeError:
            raise invalid_answer(f"Bedrock sent an invalid {event_type} event") from None
        if event_type == "messageStart":
            return self.chunk({"role": ev.role or "assistant", "content": ""})
        if event_type == "contentBlockStart" and ev.start is not None and ev.start.toolUse is not None:
            index = self._tool_index.setdefault(ev.contentBlockIndex, len(self._tool_index))
            call = {
                "index": index,
                "id": ev.start.toolUse.toolUseId,
                "type": "function",
                "function": {"name": ev.start.toolUse.name, "arguments": ""},
            }
            return self.chunk({"tool_calls": [call]})
        if event_type == "contentBlockDelta" and ev.delta is not None:
            if ev.delta.text is not None:
                return self.chunk({"content": ev.delta.text})
            if ev.delta.toolUse is not None:
                index = self._tool_index.setdefault(ev.contentBlockIndex, len(self._tool_index))
                return self.chunk({"tool_calls": [{"index": index, "function": {"arguments": ev.delta.toolUse.input}}]})
            if ev.delta.reasoningContent is not None and ev.delta.reasoningContent.text:
                return self.chunk({"reasoning_content": ev.delta.reasoningContent.text})
            return None
        if event_type == "messageStop":
            self.stopped = True
            return self.chunk({}, stop_reason_to_finish(ev.stopReason))
        if event_type == "metadata" and ev.usage is not None:
            self.usage = bedrock_usage_to_usage(ev.usage)
        return None
