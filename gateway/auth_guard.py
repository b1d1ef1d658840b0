"""Repeated failed authentication from one address is slowed, then refused.

Every 401 that refused an unknown key (a guess; not a deleted, blocked or expired key, which a
client may well keep sending until it is told) counts as a failure of the client's address. Within a window (60 s),
failures past `slow_after` make each further 401 wait before it is sent (doubling, at most
`MAX_DELAY`), so guessing keys gets slower with every guess; at `refuse_after` failures the
address is refused with 429 and `retry-after` until the window ends, before its key is even
looked at. Each failure and each refusal is a log line with the address and the count.

Counts live in the edge process (each edge counts what it sees): a guesser spread over several
edges is slowed by each of them. `refuse_after=0` turns the guard off. Behind a reverse proxy every
client has the proxy's address: set the limits with that in mind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from gateway import metrics
from gateway.asgi_io import Message, Receive, Scope, Send
from gateway.errors import KEY_GUESS, error_json
from llmgw.contracts import ErrorCode, ErrorType

log = structlog.get_logger()

WINDOW = 60.0  # seconds failures are counted over
FIRST_DELAY = 0.05  # seconds the first slowed 401 waits
MAX_DELAY = 2.0
MAX_TRACKED = 10_000  # addresses remembered at most (the oldest windows are dropped first)


class FailedAuthGuard:
    __slots__ = ("_failures", "refuse_after", "slow_after")

    def __init__(self, slow_after: int, refuse_after: int) -> None:
        self.slow_after = slow_after
        self.refuse_after = refuse_after
        self._failures: dict[str, tuple[float, int]] = {}  # address -> (window start, failures in it)

    @property
    def enabled(self) -> bool:
        return self.refuse_after > 0

    def _count(self, address: str, now: float) -> tuple[float, int]:
        start, count = self._failures.get(address, (now, 0))
        return (now, 0) if now - start >= WINDOW else (start, count)

    def refused_for(self, address: str) -> float | None:
        """Seconds until the address may try again, when it is refused now; else None."""
        if address not in self._failures:
            return None
        now = time.monotonic()
        start, count = self._count(address, now)
        if count < self.refuse_after:
            return None
        return max(start + WINDOW - now, 1.0)

    def failed(self, address: str) -> float:
        """Count a failure; the seconds its answer should wait."""
        now = time.monotonic()
        start, count = self._count(address, now)
        count += 1
        if address not in self._failures and len(self._failures) >= MAX_TRACKED:
            oldest = min(self._failures, key=lambda a: self._failures[a][0])
            del self._failures[oldest]
        self._failures[address] = (start, count)
        delay = 0.0 if count <= self.slow_after else min(FIRST_DELAY * 2 ** (count - self.slow_after - 1), MAX_DELAY)
        log.warning("auth_failed", address=address, failures=count, window_s=WINDOW, delay_s=round(delay, 3))
        return delay


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def failed_auth_middleware(guard: FailedAuthGuard) -> Callable[[ASGIApp], ASGIApp]:
    """The guard as Litestar middleware: every route's 401s count, every route is refused alike."""

    def middleware(app: ASGIApp) -> ASGIApp:
        if not guard.enabled:
            return app

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            address = _address(scope)
            retry_after = guard.refused_for(address)
            if retry_after is not None:
                log.warning("auth_refused", address=address, retry_after_s=round(retry_after, 1))
                scope[metrics.REFUSAL] = "auth"
                body = error_json(
                    "Too many failed authentication attempts from this address; try again later.",
                    ErrorType.RATE_LIMIT,
                    ErrorCode.RATE_LIMITED,
                )
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(int(retry_after + 0.999)).encode()),
                ]
                await send({"type": "http.response.start", "status": 429, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return

            async def counted(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] == 401 and scope["state"].get(KEY_GUESS):
                    delay = guard.failed(address)
                    if delay:
                        await asyncio.sleep(delay)
                await send(message)

            await app(scope, receive, counted)

        return guarded

    return middleware
