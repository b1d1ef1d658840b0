"""Cancels of requests a worker is not serving (yet): a background response cancelled while its
request waited in the queue. The Cancel reaches every worker; the one that takes the request later
does not call the upstream, and records it as cancelled (its one usage row, nothing used)."""

from __future__ import annotations

import time

KEPT = 10_000  # cancels remembered at most
TTL = 3600.0  # seconds a cancel is remembered


class EarlyCancels:
    __slots__ = ("_at",)

    def __init__(self) -> None:
        self._at: dict[str, float] = {}  # request id -> when its cancel came, oldest first

    def add(self, request_id: str) -> None:
        now = time.time()
        if len(self._at) >= KEPT:
            self._at = {k: t for k, t in self._at.items() if now - t < TTL}
            while len(self._at) >= KEPT:
                del self._at[next(iter(self._at))]
        self._at[request_id] = now

    def take(self, request_id: str) -> bool:
        """Whether the request was cancelled before it was taken (forgotten once asked)."""
        return self._at.pop(request_id, None) is not None
