"""What a provider call gives the worker: a whole answer, stream items, or a native answer's parts."""

from __future__ import annotations

from abc import ABC, abstractmethod

import msgspec

from workers.usage import Usage


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


# A native call yields its NativeHead, then the body's bytes as they arrive, and a Usage (last)
# when the provider's own usage fields said what the call used.
NativeItem = NativeHead | bytes | Usage


class NativeUsage(ABC):
    """Reads a provider's own usage fields from a native answer: a whole JSON body, or the data
    of each server-sent event of a stream. One instance per call; `usage` is None until known."""

    usage: Usage | None = None

    @abstractmethod
    def body(self, content: bytes) -> None: ...

    @abstractmethod
    def event(self, data: bytes) -> None: ...
