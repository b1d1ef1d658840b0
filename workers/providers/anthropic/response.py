"""Anthropic answers -> OpenAI: a Message as a chat.completion, usage, and errors.

Reference: https://docs.anthropic.com/en/api/messages (Message, stop_reason, usage) and
https://docs.anthropic.com/en/api/errors (HTTP statuses and the `{"type": "error", "error": ...}`
envelope). Anthropic counts cached prompt tokens apart from `input_tokens`; the gateway's
prompt_tokens is all of them, as OpenAI reports it.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from llmgw.config import Deployment
from workers.providers.anthropic.wire import AnthropicUsage, ErrorBody, Message, encoder, error_decoder
from workers.providers.errors import ErrorKind, ProviderError, UpstreamError, error_reader, upstream_error
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


# Anthropic's error types that say more than the HTTP status does.
ERROR_HINTS = {
    "authentication_error": ErrorKind.CREDENTIAL_REFUSED,
    "permission_error": ErrorKind.CREDENTIAL_REFUSED,
    "overloaded_error": ErrorKind.OVERLOADED,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
}


def _provider_error(status: int, err: ErrorBody | None) -> ProviderError:
    kind = err.type if err is not None else ""
    hint = ERROR_HINTS.get(kind) or (ErrorKind.OVERLOADED if status == 529 else None)
    # A client error keeps Anthropic's type as its code (`not_found_error`, `request_too_large`, ...).
    return ProviderError(message=err.message if err is not None else None, kind=kind or None, code=kind or None, hint=hint)


def anthropic_error_to_provider_error(status: int, body: bytes) -> ProviderError:
    """`{"type": "error", "error": {"type", "message"}}`; 529 is Anthropic's "overloaded"."""
    try:
        err = error_decoder.decode(body).error
    except msgspec.DecodeError:
        err = None
    return _provider_error(status, err)


anthropic_error_to_upstream_error = error_reader(anthropic_error_to_provider_error)


def anthropic_stream_error(err: ErrorBody | None, deployment: Deployment) -> UpstreamError:
    """An `error` event that ended a stream (it has no HTTP status of its own)."""
    error = _provider_error(0, err)
    if err is None:
        error = msgspec.structs.replace(error, message="stream error")
    return upstream_error(0, error, deployment)
