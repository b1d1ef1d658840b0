"""Writing OpenAI `chat.completion.chunk` documents from a provider's stream events: one id and
timestamp per stream (the id may be replaced by the provider's own once it is known)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from workers.providers.answers import StreamItem
from workers.usage import Usage, usage_to_openai

_encoder = msgspec.json.Encoder()


class ChunkWriter:
    def __init__(self, model: str, id_prefix: str) -> None:
        self.model = model
        self.id = f"{id_prefix}-{time.time_ns():x}"
        self.created = int(time.time())
        self.started = False  # the role chunk went out

    def chunk(self, choices: list[dict[str, Any]], usage: Usage | dict[str, Any] | None = None) -> bytes:
        """A chunk of `choices`; `usage` as the gateway's Usage or as an OpenAI usage object."""
        doc: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            doc["usage"] = usage if isinstance(usage, dict) else usage_to_openai(usage)
        return _encoder.encode(doc)

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        """The one-choice chunk most events become."""
        return self.chunk([{"index": 0, "delta": delta, "finish_reason": finish}])

    def opening(self) -> list[StreamItem]:
        """The role chunk, before whatever the first upstream event brings (none before it: the
        time to first token is the upstream's)."""
        if self.started:
            return []
        self.started = True
        return [self.chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
