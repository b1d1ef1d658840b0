"""Deterministic OpenAI-format payloads for the fake upstream (see fake_openai.py).

Token accounting (tests compare usage rows against it):
  prompt_tokens     = whitespace-separated words in every message text + number of messages
  completion_tokens = n, the reply being "w0 w1 ... w{n-1}", n = max_tokens
                      (or max_completion_tokens) if given else 8, capped at 2000 (not capped
                      for a model named fake-long...: answers of megabytes, "w0 ... w399999")
  cached_tokens     = K when a message text contains "cached:K", else 0
Embeddings: words per string input (or tokens per token-array input), one vector each, of 8
dimensions or the request's `dimensions` (as text-embedding-3 models take it).
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import re
import struct
import time
import zlib
from typing import Any

import msgspec

DEFAULT_COMPLETION_TOKENS = 8
MAX_COMPLETION_TOKENS = 2000
EMBEDDING_DIM = 8
SYSTEM_FINGERPRINT = "fp_fake0001"

WORDS = [f"w{i}" for i in range(MAX_COMPLETION_TOKENS)]
LONG_MODEL_PREFIX = "fake-long"  # no cap on the completion's length
_CACHED_RE = re.compile(r"cached:(\d+)")

encode_json = msgspec.json.Encoder().encode
decode_json = msgspec.json.Decoder().decode


class BadRequest(ValueError):
    """The request body does not fit the API; maps to a 400 invalid_request_error."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    return encode_json({"error": {"message": message, "type": type_, "param": param, "code": code}})


def _message_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        ]
    return []


def count_prompt(messages: Any) -> tuple[int, int]:
    """Return (prompt_tokens, cached_tokens) for a chat `messages` list."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", "messages")
    words = 0
    cached = None
    for message in messages:
        if not isinstance(message, dict):
            raise BadRequest("each message must be an object", "messages")
        for text in _message_texts(message.get("content")):
            words += len(text.split())
            if cached is None:
                match = _CACHED_RE.search(text)
                if match:
                    cached = int(match.group(1))
    return words + len(messages), cached or 0


def completion_length(body: dict) -> tuple[int, str]:
    """Return (n words to generate, finish_reason)."""
    limit = body.get("max_tokens")
    if limit is None:
        limit = body.get("max_completion_tokens")
    if limit is None:
        return DEFAULT_COMPLETION_TOKENS, "stop"
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise BadRequest("max_tokens must be a non-negative integer", "max_tokens")
    n = limit if str(body.get("model", "")).startswith(LONG_MODEL_PREFIX) else min(limit, MAX_COMPLETION_TOKENS)
    return n, "length" if n == limit else "stop"


def word(i: int) -> str:
    return WORDS[i] if i < MAX_COMPLETION_TOKENS else f"w{i}"


def reply_text(n: int) -> str:
    """The answer of n tokens: "w0 w1 ... w{n-1}"."""
    return " ".join(WORDS[:n]) if n <= MAX_COMPLETION_TOKENS else " ".join(word(i) for i in range(n))


def chat_usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


_ID_PREFIX = "chatcmpl-" + os.urandom(6).hex()
_id_counter = itertools.count(1)


def new_completion_id() -> str:
    """Unique per process run (random prefix) and cheap (a counter)."""
    return f"{_ID_PREFIX}{next(_id_counter):020x}"


def chat_completion(model: str, n: int, finish_reason: str, usage: dict) -> bytes:
    return encode_json(
        {
            "id": new_completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": reply_text(n),
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
    )


class ChunkWriter:
    """Builds the `data: {chat.completion.chunk}\\n\\n` events of one streamed completion."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._base = {
            "id": new_completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        self._include_usage = include_usage

    def _event(self, choices: list, usage: dict | None) -> bytes:
        chunk = dict(self._base, choices=choices)
        if self._include_usage:
            chunk["usage"] = usage
        return b"data: " + encode_json(chunk) + b"\n\n"

    def delta(self, delta: dict, finish_reason: str | None = None) -> bytes:
        return self._event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], None)

    def word(self, i: int) -> bytes:
        return self.delta({"content": word(i) if i == 0 else " " + word(i)})

    def usage(self, usage: dict) -> bytes:
        return self._event([], usage)


DONE_EVENT = b"data: [DONE]\n\n"


def _embedding_input(value: Any) -> list[tuple[int, bytes]]:
    """Return (token count, identity bytes) per input item."""
    if isinstance(value, str):
        return [(len(value.split()), value.encode())]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) for v in value):
            return [(len(value), str(value).encode())]
        if all(isinstance(v, str) for v in value):
            return [(len(v.split()), v.encode()) for v in value]
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return [(len(v), str(v).encode()) for v in value]
    raise BadRequest("'input' must be a string, an array of strings, or token arrays", "input")


MAX_EMBEDDING_DIM = 3072  # the largest text-embedding-3 model's dimensions


def embedding_vector(identity: bytes, dimensions: int = EMBEDDING_DIM) -> list[float]:
    seed = zlib.crc32(identity)
    return [round(math.sin(seed + k), 6) for k in range(dimensions)]


def embeddings(body: dict) -> bytes:
    model = body.get("model")
    items = _embedding_input(body.get("input"))
    as_base64 = body.get("encoding_format") == "base64"
    dimensions = body.get("dimensions", EMBEDDING_DIM)
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        raise BadRequest("Invalid 'dimensions': integer below minimum value (1).", "dimensions")
    if dimensions > MAX_EMBEDDING_DIM:  # (as text-embedding-3-large's own size bounds it)
        raise BadRequest(f"Invalid 'dimensions': integer above maximum value ({MAX_EMBEDDING_DIM}).", "dimensions")
    data = []
    for index, (_, identity) in enumerate(items):
        vector: Any = embedding_vector(identity, dimensions)
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    words = sum(count for count, _ in items)
    return encode_json({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": words, "total_tokens": words}})


MODEL_IDS = ["bench-model", "gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]


def models_list() -> bytes:
    created = 1700000000
    return encode_json(
        {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": created, "owned_by": "fake-openai"} for m in MODEL_IDS],
        }
    )
