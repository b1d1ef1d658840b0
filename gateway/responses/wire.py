"""Responses API wire helpers shared by the whole answer and the stream: the `response` object,
its usage from a chat completion's, ids, and the typed server-sent events.

Reference: https://platform.openai.com/docs/api-reference/responses/object and
https://platform.openai.com/docs/api-reference/responses-streaming
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import msgspec

from gateway.chat_answers import ChatUsage
from gateway.responses.request import ResponsesRequest

_encoder = msgspec.json.Encoder()

# OpenAI finish_reason -> why a response is incomplete (other reasons complete it).
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(16).hex()}"


def derived_id(prefix: str, seed: str, n: int) -> str:
    """The `n`th id a response's translation makes, the same on every edge that translates it
    (a job taken over is translated again from the first reply: its items keep their ids)."""
    return f"{prefix}_{hashlib.blake2b(b'%s:%d' % (seed.encode(), n), digest_size=16).hexdigest()}"


def response_id_for(request_id: str) -> str:
    """The id of a response the gateway writes: its request id's, so the two are found together."""
    return "resp_" + request_id.removeprefix("req-")


def chat_usage_to_responses(usage: ChatUsage | None) -> dict[str, Any]:
    """Chat usage in the Responses shape (input/output tokens and their details)."""
    usage = usage or ChatUsage()
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    cached = (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
    reasoning = (usage.completion_tokens_details.reasoning_tokens or 0) if usage.completion_tokens_details else 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def response_object(
    request: ResponsesRequest,
    model: str,
    response_id: str,
    created_at: int,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `response` object: what was asked (echoed as OpenAI does), its output, its usage.
    `model` is the name the client asked for; a finish_reason that cut the answer short makes an
    `incomplete` response naming why."""
    incomplete = INCOMPLETE_REASONS.get(finish_reason or "")
    if incomplete is not None and status == "completed":
        status = "incomplete"
    fmt = request.text.format if request.text is not None else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": request.background is True,
        "error": error,
        "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "metadata": request.metadata or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {
            "effort": request.reasoning.effort if request.reasoning else None,
            "summary": request.reasoning.summary if request.reasoning else None,
        },
        "store": request.stored,
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "text": {"format": msgspec.to_builtins(fmt) if fmt is not None else {"type": "text"}},
        "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
        "tools": request.tools or [],
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": request.user,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments}


def sse_event(event: dict[str, Any]) -> bytes:
    """One typed server-sent event: `event: <type>` and its JSON `data:`."""
    return b"event: " + event["type"].encode() + b"\ndata: " + _encoder.encode(event) + b"\n\n"
