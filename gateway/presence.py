"""Which providers have a live worker (from their heartbeats), for the readiness check."""

from __future__ import annotations

import time

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from llmgw.contracts import Subjects, decode_heartbeat


class WorkerPresence:
    def __init__(self, nc: Client, subjects: Subjects, seen_within: float) -> None:
        self.nc = nc
        self.subjects = subjects
        self.seen_within = seen_within
        self.last_seen: dict[str, float] = {}  # provider -> monotonic time of the last heartbeat
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.subjects.heartbeat_wildcard, cb=self._on_beat)

    async def _on_beat(self, msg: Msg) -> None:
        try:
            beat = decode_heartbeat(msg.data)
        except Exception:
            return
        now = time.monotonic()
        for provider in beat.providers:
            self.last_seen[provider] = now

    def missing(self, providers: tuple[str, ...]) -> list[str]:
        now = time.monotonic()
        return [p for p in providers if now - self.last_seen.get(p, -1e9) > self.seen_within]
