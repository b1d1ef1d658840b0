"""Anthropic wire helpers shared by the whole answer and the stream: SSE events, error bodies,
stop reasons and usage converted from their OpenAI counterparts."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.chat_answers import ChatUsage

_encoder = msgspec.json.Encoder()

# https://docs.anthropic.com/en/api/errors: the error `type` for each HTTP status. Other 4xx are
# invalid_request_error, as Anthropic does; the gateway's 503 (overloaded upstream) is Anthropic's 529.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}

# OpenAI finish_reason -> Anthropic stop_reason. OpenAI does not say whether "stop" was a stop
# sequence, so it is always end_turn (and stop_sequence is always null).
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def anthropic_error_type(status: int) -> str:
    """The Anthropic error type a client expects for an HTTP status."""
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def anthropic_error_json(status: int, message: str, request_id: str | None = None) -> bytes:
    """An Anthropic error body: `{"type": "error", "error": {"type", "message"}}` (+ request_id)."""
    body: dict[str, Any] = {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}
    if request_id:
        body["request_id"] = request_id
    return _encoder.encode(body)


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event as Anthropic frames it: `event: <type>` then its JSON `data:`."""
    return b"event: " + name.encode() + b"\ndata: " + _encoder.encode(data) + b"\n\n"


def error_event(message: str, type: str = "api_error") -> bytes:
    """The `event: error` Anthropic sends when a stream fails after its 200 response."""
    return sse_event("error", {"type": "error", "error": {"type": type, "message": message}})


PING = sse_event("ping", {"type": "ping"})


def stop_reason(finish_reason: str | None, has_tool_use: bool) -> str:
    """The Anthropic stop_reason for an OpenAI finish_reason.

    Some OpenAI-compatible upstreams end a tool-calling turn with "stop"; Anthropic clients run
    their tools only on stop_reason "tool_use", so a turn holding tool_use blocks says so.
    """
    reason = _STOP_REASONS.get(finish_reason or "stop", "end_turn")
    if has_tool_use and reason == "end_turn":
        return "tool_use"
    return reason


def usage_to_anthropic(usage: ChatUsage | None) -> dict[str, int]:
    """OpenAI usage as Anthropic counts it: input_tokens excludes the cache reads, which Anthropic
    reports apart (OpenAI's prompt_tokens includes them). OpenAI has no cache-write count."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    prompt = usage.prompt_tokens or 0
    cached = (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": usage.completion_tokens or 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def parse_arguments(arguments: str | None) -> dict[str, Any]:
    """A tool call's JSON arguments as the tool_use `input` object ({} when not a JSON object)."""
    if not arguments:
        return {}
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}
