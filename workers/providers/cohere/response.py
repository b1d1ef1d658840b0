"""Cohere v2 answers -> OpenAI: chat responses, embeddings, usage and errors.

Reference: https://docs.cohere.com/reference/chat (`finish_reason` COMPLETE, STOP_SEQUENCE,
MAX_TOKENS, TOOL_CALL, ERROR, TIMEOUT; `usage`), https://docs.cohere.com/reference/embed and
https://docs.cohere.com/reference/errors. Usage: `usage.tokens` is what the model processed and
is what the gateway meters; `billed_units` (Cohere's invoice, without its prompt template) is the
fallback when `tokens` is absent.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import msgspec

from workers.providers.cohere.wire import ChatResponse, CohereTokens, CohereUsage, EmbedResponse, encoder, error_decoder
from workers.providers.errors import ErrorKind, ProviderError, error_reader
from workers.usage import Usage, embeddings_usage_to_openai, usage_to_openai

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}


def finish_reason(reason: str | None) -> str:
    """ERROR and TIMEOUT (the model stopped early on Cohere's side) have no OpenAI equivalent:
    the answer so far ends with `stop`."""
    return FINISH_REASONS.get(reason or "", "stop")


def _counted(t: CohereTokens | None) -> bool:
    return t is not None and (t.input_tokens is not None or t.output_tokens is not None)


def cohere_usage_to_usage(u: CohereUsage | None) -> Usage | None:
    """`tokens` when Cohere reported them, else `billed_units`; None when neither says."""
    if u is None:
        return None
    t = u.tokens if _counted(u.tokens) else u.billed_units if _counted(u.billed_units) else None
    if t is None:
        return None
    return Usage(prompt_tokens=int(t.input_tokens or 0), completion_tokens=int(t.output_tokens or 0))


def tool_call_json(call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    return {"id": call_id or "", "type": "function", "function": {"name": name or "", "arguments": arguments}}


def cohere_response_to_chat_completion(resp: ChatResponse, model: str, usage: Usage | None) -> bytes:
    """A v2 chat response as an OpenAI chat.completion (text blocks joined; `thinking` blocks and
    the `tool_plan` have no place in OpenAI's message and are left out)."""
    message = resp.message
    texts = [c.text for c in (message.content or []) if c.type == "text" and c.text] if message else []
    calls = (
        [
            tool_call_json(c.id, c.function.name if c.function else None, (c.function.arguments if c.function else None) or "{}")
            for c in (message.tool_calls or [])
        ]
        if message
        else []
    )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    completion: dict[str, Any] = {
        "id": resp.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": reply, "finish_reason": finish_reason(resp.finish_reason)}],
    }
    if usage is not None:
        completion["usage"] = usage_to_openai(usage)
    return encoder.encode(completion)


def cohere_embed_to_embeddings(resp: EmbedResponse, model: str, as_base64: bool, usage: Usage | None) -> bytes:
    """A v2 embed response as an OpenAI embeddings list; `encoding_format: base64` is honoured by
    packing the floats as little-endian float32, as OpenAI does."""
    vectors = resp.embeddings.float_ if resp.embeddings is not None and resp.embeddings.float_ is not None else []
    data = []
    for index, vector in enumerate(vectors):
        value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": value})
    prompt = usage.prompt_tokens if usage is not None else 0
    return encoder.encode({"object": "list", "data": data, "model": model, "usage": embeddings_usage_to_openai(prompt)})


def cohere_error_to_provider_error(status: int, body: bytes) -> ProviderError:
    """Cohere errors are `{"id", "message"}`. 498 ("invalid token") is a refused credential; a
    prompt over the context window ("too many tokens: ...", not the max_tokens limit) says so."""
    try:
        message = error_decoder.decode(body).message
    except msgspec.DecodeError:
        message = None
    message = message or None  # (an empty message: the body is shown)
    if status == 498:
        return ProviderError(message=message, hint=ErrorKind.CREDENTIAL_REFUSED)
    lowered = (message or body.decode(errors="replace")).lower()
    too_long = lowered.startswith("too many tokens") and "max tokens" not in lowered
    return ProviderError(message=message, hint=ErrorKind.CONTEXT_WINDOW_EXCEEDED if too_long else None)


cohere_error_to_upstream_error = error_reader(cohere_error_to_provider_error)
