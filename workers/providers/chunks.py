"""Writing OpenAI `chat.completion.chunk` documents for a provider whose stream events carry
plain text (HuggingFace, Vectara): one id and timestamp per stream, a role chunk first."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from workers.providers.base import StreamItem
from workers.usage import Usage, usage_to_openai

_encoder = msgspec.json.Encoder()


class ChunkWriter:
    def __init__(self, model: str, id_prefix: str) -> None:
        self.model = model
        self.id = f"{id_prefix}-{time.time_ns():x}"
        self.created = int(time.time())
        self.started = False  # the role chunk went out

    def chunk(self, choices: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
        doc: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": choices,
        }
        if usage is not None:
            doc["usage"] = usage_to_openai(usage)
        return _encoder.encode(doc)

    def opening(self) -> list[StreamItem]:
        """The role chunk, before whatever the first upstream event brings (none before it: the
        time to first token is the upstream's)."""
        if self.started:
            return []
        self.started = True
        return [self.chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
