"""Deterministic Anthropic Messages payloads for the fake upstream (see fake_anthropic.py, whose
docstring gives the token accounting): request checks as the real API makes them, usage counts,
the planned reply, and Message / SSE event documents.

Reference: https://docs.anthropic.com/en/api/messages, https://docs.anthropic.com/en/api/messages-streaming
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from typing import Any

from bench.fake_openai_payloads import WORDS, encode_json

DEFAULT_REPLY_WORDS = 8
TOOL_TEXT = "Let me check."
TOOL_INPUT = {"location": "Paris", "unit": "celsius"}
TOOL_USE_TOKENS = 10
REQUEST_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",  # (betas Claude Code sends: context-management, effort)
        "output_config",
    }
)
_CACHED_RE = re.compile(r"cached:(\d+)")
_ids = itertools.count(1)
_ID_TAG = os.urandom(4).hex()


def new_id(prefix: str) -> str:
    return f"{prefix}_{_ID_TAG}{next(_ids):016x}"


class Invalid(ValueError):
    """A request the real API refuses with 400 invalid_request_error."""


# ---- reading a request -----------------------------------------------------------------------


def _blocks(content: Any, where: str) -> list[dict]:
    if isinstance(content, str):
        if not content:
            raise Invalid(f"{where}: text content blocks must be non-empty")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise Invalid(f"{where}: content must be a non-empty string or array of content blocks")
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and not (isinstance(block.get("text"), str) and block["text"]):
            raise Invalid(f"{where}.{i}: text content blocks must be non-empty")
        if kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64" and not (source.get("media_type") and source.get("data")):
                raise Invalid(f"{where}.{i}.source: base64 image sources need media_type and data")
            if source.get("type") not in ("base64", "url"):
                raise Invalid(f"{where}.{i}.source.type: Input should be 'base64' or 'url'")
        elif kind not in ("text", "image", "document", "tool_use", "tool_result", "thinking"):
            raise Invalid(f"{where}.{i}.type: unknown content block type {kind!r}")
    return content


def _texts(block: dict) -> list[str]:
    if block.get("type") == "text":
        return [block["text"]]
    if block.get("type") == "tool_result":
        inner = block.get("content")
        if isinstance(inner, str):
            return [inner]
        return [b["text"] for b in inner or () if isinstance(b, dict) and b.get("type") == "text"]
    return []


def _check_turns(messages: list[dict]) -> None:
    """Roles alternate; tool_result blocks answer the previous turn's tool_use blocks, all of them,
    before any other content."""
    pending: set[str] = set()
    previous = None
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "system":  # (a system message between turns does not take part in the alternation)
            continue
        if role == previous:
            raise Invalid(
                f'messages: roles must alternate between "user" and "assistant", but found multiple "{role}" roles in a row'
            )
        previous = role
        blocks = message["content"]
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if role == "assistant":
            if results:
                raise Invalid(f"messages.{i}: tool_result blocks are only allowed in user messages")
            pending = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
            continue
        if any(b.get("type") == "tool_use" for b in blocks):
            raise Invalid(f"messages.{i}: tool_use blocks are only allowed in assistant messages")
        kinds = [b.get("type") for b in blocks]
        if results and kinds[: len(results)] != ["tool_result"] * len(results):
            raise Invalid(f"messages.{i}: tool_result blocks must come before any other content")
        unknown = [r for r in results if r not in pending]
        if unknown:
            raise Invalid(f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {unknown[0]}")
        missing = pending - set(results)
        if missing:
            raise Invalid(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {sorted(missing)[0]}"
            )
        pending = set()


def check_request(body: dict) -> dict:
    """The body with every message's content as a list of blocks, or Invalid."""
    extra = sorted(set(body) - REQUEST_FIELDS)
    if extra:
        raise Invalid(f"{extra[0]}: Extra inputs are not permitted")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise Invalid("max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise Invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    normalized = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant", "system"):
            raise Invalid(f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'")
        if role == "system" and not all(b.get("type") == "text" for b in _blocks(message.get("content"), "")):
            raise Invalid(f"messages.{i}.content: system messages hold text blocks only")
        normalized.append({"role": role, "content": _blocks(message.get("content"), f"messages.{i}.content")})
    _check_turns(normalized)
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 1):
        raise Invalid("temperature: Input should be less than or equal to 1")
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
            raise Invalid(f"tools.{i}: custom tools need a name and an input_schema object")
    choice = body.get("tool_choice")
    if choice is not None and (not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none")):
        raise Invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if isinstance(body.get("metadata"), dict) and set(body["metadata"]) - {"user_id"}:
        raise Invalid("metadata: only user_id is permitted")
    return {**body, "messages": normalized}


def count_usage(body: dict) -> dict[str, int]:
    """The input side of `usage` (see the module docstring)."""
    system = body.get("system")
    system_blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system or ())
    words = written = 0
    read = None
    texts = [(t, b) for b in system_blocks for t in _texts(b)]
    texts += [(t, b) for m in body["messages"] for b in m["content"] for t in _texts(b)]
    for text, block in texts:
        n = len(text.split())
        words += n
        if block.get("cache_control") is not None:
            written += n
        if read is None and (match := _CACHED_RE.search(text)):
            read = int(match.group(1))
    total = words + len(body["messages"])
    cached = min(read or 0, total)
    written = min(written, total - cached)
    return {
        "input_tokens": total - cached - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def wants_tool(body: dict) -> bool:
    if not body.get("tools") or (body.get("tool_choice") or {}).get("type") == "none":
        return False
    last = next(m for m in reversed(body["messages"]) if m["role"] != "system")
    return last["role"] == "user" and any("weather" in b["text"].lower() for b in last["content"] if b.get("type") == "text")


@dataclass
class Reply:
    """What the fake answers: text words, maybe a tool call, and why it stopped."""

    words: list[str]
    stop_reason: str
    stop_sequence: str | None = None
    tool: dict | None = None

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def output_tokens(self) -> int:
        return len(self.words) + (TOOL_USE_TOKENS if self.tool else 0)


def plan_reply(body: dict) -> Reply:
    if wants_tool(body):
        tool = {"type": "tool_use", "id": new_id("toolu"), "name": body["tools"][0]["name"], "input": TOOL_INPUT}
        return Reply(TOOL_TEXT.split(), "tool_use", tool=tool)
    limit = body["max_tokens"]
    n = min(limit, DEFAULT_REPLY_WORDS)
    stops = body.get("stop_sequences") or ()
    for i in range(n):
        if WORDS[i] in stops:
            return Reply(WORDS[:i], "stop_sequence", WORDS[i])
    return Reply(WORDS[:n], "max_tokens" if limit < DEFAULT_REPLY_WORDS else "end_turn")


def message_json(model: str, reply: Reply, usage: dict, content: list | None = None, stop: bool = True) -> dict:
    if content is None:
        content = ([{"type": "text", "text": reply.text}] if reply.words else []) + ([reply.tool] if reply.tool else [])
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reply.stop_reason if stop else None,
        "stop_sequence": reply.stop_sequence if stop else None,
        "usage": {**usage, "output_tokens": reply.output_tokens if stop else 1, "service_tier": "standard"},
    }


def sse(kind: str, data: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + encode_json(data) + b"\n\n"
