"""A streamed chat completion put back together, to be stored as the ChatCompletion OpenAI would
have answered whole: each choice's role, content, refusal, tool calls (their arguments joined)
and finish reason, the stream's id, created, model and usage.

Reference: https://platform.openai.com/docs/api-reference/chat-streaming/streaming
"""

from __future__ import annotations

from typing import Any

import msgspec

_decoder = msgspec.json.Decoder()
_TOP = ("id", "created", "model", "system_fingerprint", "service_tier")


class _Choice:
    __slots__ = ("content", "finish_reason", "refusal", "role", "tool_calls")

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] | None = None
        self.refusal: list[str] | None = None
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None

    def feed(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("role"), str):
                self.role = delta["role"]
            if isinstance(delta.get("content"), str):
                self.content = [*(self.content or []), delta["content"]]
            if isinstance(delta.get("refusal"), str):
                self.refusal = [*(self.refusal or []), delta["refusal"]]
            for i, call in enumerate(delta.get("tool_calls") or []):
                if isinstance(call, dict):
                    self._tool_call(call, i)
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]

    def _tool_call(self, delta: dict[str, Any], position: int) -> None:
        index = delta.get("index")
        call = self.tool_calls.setdefault(index if isinstance(index, int) else position, {"type": "function"})
        for name in ("id", "type"):
            if isinstance(delta.get(name), str):
                call[name] = delta[name]
        function = delta.get("function")
        if isinstance(function, dict):
            into = call.setdefault("function", {"name": "", "arguments": ""})
            for name in ("name", "arguments"):
                if isinstance(function.get(name), str):
                    into[name] += function[name]

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": self.role,
            "content": None if self.content is None else "".join(self.content),
            "refusal": None if self.refusal is None else "".join(self.refusal),
        }
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return message


class ChunkAssembler:
    """Fed each chunk's JSON as it is relayed; `completion()` is the whole ChatCompletion."""

    __slots__ = ("choices", "top", "usage")

    def __init__(self) -> None:
        self.top: dict[str, Any] = {}
        self.choices: dict[int, _Choice] = {}
        self.usage: Any = None

    def feed(self, data: bytes) -> dict[str, Any] | None:
        """Take one chunk; the chunk decoded (None when it is not a JSON object)."""
        try:
            chunk = _decoder.decode(data)
        except msgspec.DecodeError:
            return None
        if not isinstance(chunk, dict):
            return None
        for name in _TOP:
            if name in chunk and name not in self.top and chunk[name] is not None:
                self.top[name] = chunk[name]
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict):
                index = choice.get("index")
                self.choices.setdefault(index if isinstance(index, int) else 0, _Choice()).feed(choice)
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        return chunk

    def completion(self) -> dict[str, Any]:
        completion: dict[str, Any] = {"id": self.top.get("id", ""), "object": "chat.completion"}
        completion.update((name, self.top[name]) for name in _TOP[1:] if name in self.top)
        completion["choices"] = [
            {"index": i, "message": c.message(), "finish_reason": c.finish_reason, "logprobs": None}
            for i, c in sorted(self.choices.items())
        ]
        completion["usage"] = self.usage
        return completion
