"""Gemini answers as OpenAI ones: whole completions, stream chunks, usage and embeddings.

References: https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse (candidates,
finishReason values, usageMetadata, promptFeedback), the OpenAI chat.completion and
chat.completion.chunk objects, and the OpenAI embeddings list.
"""

from __future__ import annotations

import base64
import os
import struct
import time
from typing import Any

from workers.providers.gemini.wire import Candidate, FunctionCall, GenerateContentResponse, UsageMetadata, encode
from workers.usage import Usage, embeddings_usage_to_openai, usage_to_openai

# Gemini finishReason -> OpenAI finish_reason (a call of a function is "tool_calls", see below).
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "stop",
    "OTHER": "stop",
    "MALFORMED_FUNCTION_CALL": "stop",
    "UNEXPECTED_TOOL_CALL": "stop",
    "TOO_MANY_TOOL_CALLS": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}


def finish_reason_to_openai(reason: str | None, called_tools: bool) -> str | None:
    if reason is None:
        return None
    if called_tools and reason == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop")


def gemini_usage_to_usage(u: UsageMetadata) -> Usage:
    """Thinking tokens are billed as output: they count in completion_tokens and are also shown
    as reasoning_tokens; tool-use prompt tokens are input the model read."""
    return Usage(
        prompt_tokens=u.promptTokenCount + u.toolUsePromptTokenCount,
        completion_tokens=u.candidatesTokenCount + u.thoughtsTokenCount,
        cached_tokens=u.cachedContentTokenCount,
        reasoning_tokens=u.thoughtsTokenCount,
    )


def new_tool_call_id() -> str:
    return "call_" + os.urandom(12).hex()


def _completion_id(resp: GenerateContentResponse) -> str:
    return "chatcmpl-" + (resp.responseId or os.urandom(12).hex())


def tool_call(call: FunctionCall) -> dict[str, Any]:
    return {
        "id": call.id or new_tool_call_id(),
        "type": "function",
        "function": {"name": call.name, "arguments": encode(call.args or {}).decode()},
    }


def _candidate_message(candidate: Candidate) -> tuple[dict[str, Any], bool]:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in candidate.content.parts if candidate.content else ():
        if part.functionCall is not None:
            calls.append(tool_call(part.functionCall))
        elif part.text is not None:
            (thoughts if part.thought else texts).append(part.text)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    return message, bool(calls)


def gemini_response_to_chat(resp: GenerateContentResponse, model: str) -> tuple[dict[str, Any], Usage | None]:
    """A whole GenerateContentResponse as an OpenAI chat.completion (one choice per candidate)."""
    choices = []
    for candidate in resp.candidates:
        message, called = _candidate_message(candidate)
        choices.append(
            {
                "index": candidate.index,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason_to_openai(candidate.finishReason or "STOP", called),
            }
        )
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
        choices.append(
            {"index": 0, "message": {"role": "assistant", "content": None}, "logprobs": None, "finish_reason": "content_filter"}
        )
    usage = gemini_usage_to_usage(resp.usageMetadata) if resp.usageMetadata is not None else None
    body: dict[str, Any] = {
        "id": _completion_id(resp),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": resp.modelVersion or model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage_to_openai(usage)
    return body, usage


class _CandidateState:
    __slots__ = ("finished", "started", "tool_calls")

    def __init__(self) -> None:
        self.started = False
        self.tool_calls = 0
        self.finished = False


class StreamConverter:
    """Turns the GenerateContentResponse events of a stream (`alt=sse`) into OpenAI chunks.

    Every event may carry text, whole function calls and a finishReason per candidate; the last
    carries the final usageMetadata. The stream has no end marker of its own: it is complete when
    the connection closes after a finishReason (`finished`)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = "chatcmpl-" + os.urandom(12).hex()
        self.created = int(time.time())
        self.finished = False
        self.usage: Usage | None = None
        self._candidates: dict[int, _CandidateState] = {}

    def _chunk(self, index: int, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return encode(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
        )

    def event(self, resp: GenerateContentResponse) -> list[bytes]:
        if resp.modelVersion:
            self.model = resp.modelVersion
        if resp.usageMetadata is not None:
            self.usage = gemini_usage_to_usage(resp.usageMetadata)
        out: list[bytes] = []
        for candidate in resp.candidates:
            state = self._candidates.setdefault(candidate.index, _CandidateState())
            delta: dict[str, Any] = {}
            parts = candidate.content.parts if candidate.content else []
            text = "".join(p.text for p in parts if p.text and not p.thought)
            thought = "".join(p.text for p in parts if p.text and p.thought)
            calls = [p.functionCall for p in parts if p.functionCall is not None]
            if text:
                delta["content"] = text
            if thought:
                delta["reasoning_content"] = thought
            if calls:
                delta["tool_calls"] = [{"index": state.tool_calls + i, **tool_call(call)} for i, call in enumerate(calls)]
                state.tool_calls += len(calls)
            if not state.started:  # the first chunk of a choice names the role
                delta = {"role": "assistant", **(delta or {"content": ""})}
                state.started = True
            if delta:
                out.append(self._chunk(candidate.index, delta))
            if candidate.finishReason:
                state.finished = True
                self.finished = True
                reason = finish_reason_to_openai(candidate.finishReason, state.tool_calls > 0)
                out.append(self._chunk(candidate.index, {}, reason))
        if not resp.candidates and resp.promptFeedback is not None and resp.promptFeedback.blockReason:
            self.finished = True
            out.append(self._chunk(0, {"role": "assistant", "content": ""}))
            out.append(self._chunk(0, {}, "content_filter"))
        return out

    def usage_chunk(self, usage: Usage) -> bytes:
        """The usage-only chunk OpenAI sends last when `stream_options.include_usage` is set."""
        return encode(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage_to_openai(usage),
            }
        )


def embeddings_list(vectors: list[list[float]], model: str, as_base64: bool, tokens: int | None) -> dict[str, Any]:
    """An OpenAI embeddings list; base64 vectors are little-endian float32, as OpenAI sends them."""
    data = []
    for index, values in enumerate(vectors):
        vector: Any = values
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": embeddings_usage_to_openai(tokens or 0),
    }
