"""Anthropic answers -> OpenAI: a Message as a chat.completion, usage, and errors.

Reference: https://docs.anthropic.com/en/api/messages (Message, stop_reason, usage) and
https://docs.anthropic.com/en/api/errors (HTTP statuses and the `{"type": "error", "error": ...}`
envelope). Anthropic counts cached prompt tokens apart from `input_tokens`; the gateway's
prompt_tokens is all of them, as OpenAI reports it.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType
from workers.providers.anthropic.wire import AnthropicUsage, Message, encoder, error_decoder
from workers.providers.base import UpstreamError, scrub
from workers.usage import Usage, usage_to_openai

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "", "stop")


def anthropic_usage_to_usage(u: AnthropicUsage) -> Usage:
    cache_read = u.cache_read_input_tokens or 0
    cache_write = u.cache_creation_input_tokens or 0
    return Usage(
        prompt_tokens=(u.input_tokens or 0) + cache_read + cache_write,
        completion_tokens=u.output_tokens or 0,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def merge_usage(base: AnthropicUsage | None, update: AnthropicUsage) -> AnthropicUsage:
    """message_start's usage updated by a message_delta's (whose fields, when present, are totals)."""
    if base is None:
        return update
    return AnthropicUsage(
        input_tokens=update.input_tokens if update.input_tokens is not None else base.input_tokens,
        output_tokens=update.output_tokens if update.output_tokens is not None else base.output_tokens,
        cache_creation_input_tokens=(
            update.cache_creation_input_tokens
            if update.cache_creation_input_tokens is not None
            else base.cache_creation_input_tokens
        ),
        cache_read_input_tokens=(
            update.cache_read_input_tokens if update.cache_read_input_tokens is not None else base.cache_read_input_tokens
        ),
    )


def usage_json(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object, with cache reads and writes also under Anthropic's names, which
    several OpenAI-format clients read."""
    return {
        **usage_to_openai(usage),
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def tool_call_json(block_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    return {"id": block_id or "", "type": "function", "function": {"name": name or "", "arguments": arguments}}


def anthropic_message_to_chat_completion(message: Message, usage: Usage | None) -> bytes:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text" and block.text:
            texts.append(block.text)
        elif block.type == "tool_use":
            calls.append(tool_call_json(block.id, block.name, encoder.encode(block.input or {}).decode()))
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    completion: dict[str, Any] = {
        "id": message.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.model,
        "choices": [{"index": 0, "message": reply, "finish_reason": finish_reason(message.stop_reason)}],
    }
    if usage is not None:
        completion["usage"] = usage_json(usage)
    return encoder.encode(completion)


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    return float(value) if value and value.replace(".", "", 1).isdigit() else None


def anthropic_error_to_upstream_error(status: int, body: bytes, headers: httpx.Headers, deployment: Deployment) -> UpstreamError:
    try:
        err = error_decoder.decode(body).error
    except msgspec.DecodeError:
        err = None
    kind = err.type if err is not None else ""
    message = scrub(
        (err.message if err is not None else body[:500].decode(errors="replace")) or f"upstream answered {status}", deployment
    )
    return error_for(status, kind, message, deployment, _retry_after(headers))


def error_for(status: int, kind: str, message: str, deployment: Deployment, retry_after: float | None = None) -> UpstreamError:
    """An Anthropic error (HTTP status and `error.type`, message already scrubbed) as the client
    gets it: the gateway's refused credential and server errors become 502, overload 503."""
    if status in (401, 403) or kind in ("authentication_error", "permission_error"):
        # The provider refused the gateway's own credential: an operator problem, not the client's.
        return UpstreamError(
            502,
            f"the upstream refused the credential of deployment {deployment.id} ({status or kind})",
            ErrorType.API,
            ErrorCode.UPSTREAM_ERROR,
        )
    if status == 529 or kind == "overloaded_error":
        return UpstreamError(503, f"the upstream is overloaded: {message}", ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE)
    if status == 429 or kind == "rate_limit_error":
        return UpstreamError(429, message, ErrorType.RATE_LIMIT, ErrorCode.RATE_LIMITED, retry_after=retry_after)
    if 400 <= status < 500:
        return UpstreamError(status, message, ErrorType.INVALID_REQUEST, kind or None)
    return UpstreamError(502, f"upstream error {status or kind}: {message}", ErrorType.API, ErrorCode.UPSTREAM_ERROR)
