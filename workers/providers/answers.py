"""What a provider call gives the worker: a whole answer, stream items, or a native answer's parts."""

from __future__ import annotations

from abc import ABC, abstractmethod

import msgspec

from workers.usage import Usage, estimate_tokens


class Completion(msgspec.Struct, frozen=True):
    body: bytes  # OpenAI-format JSON
    usage: Usage | None  # None: the provider did not say


# A stream yields chunk JSON documents (bytes) to relay, and one Usage when the provider reports it.
StreamItem = bytes | Usage


class NativeHead(msgspec.Struct, frozen=True):
    """The upstream's answer line of a native (passthrough) call: sent on to the client."""

    status: int
    headers: list[tuple[str, str]]
    stream: bool  # an event stream: its bytes are relayed as they come


class StreamProgress:
    """How far a relayed stream got, kept up to date by its adapter as it reads: what the call
    used so far when it is stopped (cancelled) before the provider said."""

    __slots__ = ("completion_chars", "prompt_bytes")

    def __init__(self, prompt_bytes: int) -> None:
        self.prompt_bytes = prompt_bytes
        self.completion_chars = 0

    def estimate(self) -> Usage:
        return Usage(
            prompt_tokens=estimate_tokens(self.prompt_bytes),
            completion_tokens=estimate_tokens(self.completion_chars),
            estimated=True,
        )


# A native call yields its NativeHead, then the body's bytes as they arrive, and a Usage (last)
# when the provider's own usage fields said what the call used; a stream may yield its
# StreamProgress first.
NativeItem = NativeHead | bytes | Usage | StreamProgress


class NativeUsage(ABC):
    """Reads a provider's own usage fields from a native answer: a whole JSON body, or the data
    of each server-sent event of a stream. One instance per call; `usage` is None until known."""

    usage: Usage | None = None

    @abstractmethod
    def body(self, content: bytes) -> None: ...

    @abstractmethod
    def event(self, data: bytes) -> None: ...
