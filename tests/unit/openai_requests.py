"""OpenAI request bodies as the worker's adapters read them: decoded once into the typed request."""

from __future__ import annotations

from typing import Any

import msgspec

from workers.providers.openai_request import ChatMessage, ChatRequest, EmbeddingsRequest
from workers.providers.request_body import RequestBody


def _raw(body: dict[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else msgspec.json.encode(body)


def chat_request(body: dict[str, Any] | bytes) -> ChatRequest:
    return RequestBody(_raw(body)).chat()


def embeddings_request(body: dict[str, Any] | bytes) -> EmbeddingsRequest:
    return RequestBody(_raw(body)).embeddings()


def chat_messages(messages: list[dict[str, Any]] | None) -> list[ChatMessage] | None:
    return None if messages is None else chat_request({"messages": messages}).messages
