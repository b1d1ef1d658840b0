"""Rate limits that hold across every edge: counted by compare-and-set in one KV record per scope.

Each limited scope (a key, user, team or deployment) has a `RateWindow` in the ratelimits KV
bucket. Admitting a request checks the scope's window (this edge's watch-fed copy) and writes it
back with the request counted (rpm) and a parallel slot taken (max_parallel), by compare-and-set
on the revision it read: when another edge wrote first, the window is read again and the request
checked again, so all edges together admit exactly the limit (`store` batches the writes of one
scope on one edge).

Tokens are known only once a request ends: `release` counts them (tpm) and frees the slot. A
tpm-only limit is checked against the watched copy without a write, so it can lag the other
edges by the watch's delay (about a millisecond); tpm bounds tokens already spent anyway. A
refusal on parallel slots is checked again on a fresh read, because slots free all the time on
other edges; one on rpm/tpm is not: those counts drop only as time passes, which the check
computes itself.

A slot expires at the request's deadline plus a grace, so the slots of a crashed edge free
themselves; counts leave the window after a minute (see `window`).

When NATS or the bucket cannot be reached, requests are refused with 503 (fail closed), or
admitted unchecked with `fail_open=True`; either way a warning is logged once per outage.
"""

from __future__ import annotations

import asyncio

import msgspec
import structlog
from nats.js import JetStreamContext

from gateway.errors import GatewayError
from gateway.ratelimits.store import Change, Stale, Unchecked, WindowStore
from gateway.ratelimits.window import (
    PARALLEL,
    Limit,
    Quota,
    RateWindow,
    Refusal,
    counted,
    quota,
    quota_headers,
    refusal,
    retry_after_text,
    scope_key,
    settled,
    uncounted,
)
from llmgw.contracts import ErrorCode, ErrorType, Subjects

log = structlog.get_logger()

SLOT_GRACE = 60.0  # a parallel slot outlives its request's deadline by this much
KV_TIMEOUT = 2.0  # seconds one KV call may take before the limits count as unreachable


class Held(msgspec.Struct, frozen=True):
    """What an admitted request holds on one scope."""

    key: str  # KV key of the scope
    second: int | None  # the second it was counted in (rpm), to take it back if another limit refuses
    slot: bool  # holds a parallel slot
    tokens: bool  # its tokens count against the scope's tpm


class Admission:
    """What a request took from its limits: give it back with `RateLimiter.release`."""

    __slots__ = ("held", "quotas", "released", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.held: list[Held] = []
        self.quotas: list[Quota] = []
        self.released = False

    def headers(self) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for the success response (empty without rpm/tpm)."""
        return quota_headers(self.quotas)


def refused_error(limit: Limit, why: Refusal, left: Quota) -> GatewayError:
    retry = retry_after_text(why.retry_after)
    headers = {"retry-after": retry, **quota_headers([left])}
    return GatewayError(
        429,
        f"Too many requests: rate limit of the {limit.label} reached: {why.allowed} {why.what}. "
        f"Retry after {retry} s.",
        ErrorType.RATE_LIMIT, ErrorCode.RATE_LIMITED, headers=headers,
    )  # fmt: skip


def unavailable_error() -> GatewayError:
    return GatewayError(
        503, "rate limits cannot be checked; retry", ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE, headers={"retry-after": "1"}
    )


class RateLimiter:
    def __init__(
        self,
        js: JetStreamContext,
        subjects: Subjects,
        fail_open: bool = False,
        *,
        slot_grace: float = SLOT_GRACE,
        kv_timeout: float = KV_TIMEOUT,
    ) -> None:
        self.js = js
        self.fail_open = fail_open
        self.slot_grace = slot_grace
        self.store = WindowStore(js, subjects.ratelimits_bucket, kv_timeout)
        self._in_outage = False
        self._giving_back: set[asyncio.Task] = set()

    async def start(self) -> None:
        await self.store.start()

    async def stop(self) -> None:
        if self._giving_back:
            await asyncio.wait(self._giving_back, timeout=self.store.kv_timeout)
        await self.store.stop()

    # ------------------------------------------------------------------------------ admission

    async def admit(self, limits: list[Limit], request_id: str, deadline: float) -> Admission:
        """Count the request against every limit with something set, or raise 429 naming the
        limit that refused it (what it took from the others is given back first)."""
        admission = Admission(request_id)
        limited = [limit for limit in limits if limit.limited]
        if not limited:
            return admission
        expires_at = deadline + self.slot_grace
        try:
            self._check_connected()
            for limit in limited:
                held, left = await self._take(limit, request_id, expires_at)
                admission.held.append(held)
                admission.quotas.append(left)
        except Unchecked as exc:
            self._outage(exc)
            if self.fail_open:
                return admission  # what was taken is released as usual; the rest goes unchecked
            await self._undo(admission)
            raise unavailable_error() from None
        except GatewayError:
            await self._undo(admission)
            raise
        except asyncio.CancelledError:
            self._give_back(admission)  # the caller went away mid-admission
            raise
        self._recovered()
        return admission

    async def _take(self, limit: Limit, request_id: str, expires_at: float) -> tuple[Held, Quota]:
        key = scope_key(limit.scope)

        def take(window: RateWindow, now: float, fresh: bool) -> tuple[RateWindow | None, tuple[Held, Quota]]:
            why = refusal(window, now, limit)
            if why is not None:
                if why.what == PARALLEL and not fresh:
                    raise Stale
                raise refused_error(limit, why, quota(window, now, limit))
            new, second = counted(window, now, limit, request_id, expires_at)
            held = Held(key, second, limit.max_parallel is not None, limit.tpm is not None)
            return new, (held, quota(new or window, now, limit))

        def orphaned(result: tuple[Held, Quota]) -> None:
            lost = Admission(request_id)
            lost.held.append(result[0])
            self._give_back(lost)

        return await self.store.apply(key, take, orphaned)

    async def release(self, admission: Admission, tokens: int) -> None:
        """The request is over: free its parallel slots and count the tokens it used (tpm).

        Never raises: a slot left behind expires by itself. A second call does nothing."""
        if admission.released:
            return
        admission.released = True
        request_id = admission.request_id
        for held in admission.held:
            used = tokens if held.tokens else 0
            if not held.slot and used <= 0:
                continue

            def done(window: RateWindow, now: float, fresh: bool, used: int = used) -> tuple[RateWindow | None, None]:
                return settled(window, now, request_id, used), None

            await self._quietly(held.key, done, "rate_limit_release_failed")

    async def _undo(self, admission: Admission) -> None:
        """Take back what a request that was not admitted got counted for."""
        admission.released = True
        request_id = admission.request_id
        for held in admission.held:
            if held.second is None and not held.slot:
                continue

            def undo(
                window: RateWindow, now: float, fresh: bool, second: int | None = held.second
            ) -> tuple[RateWindow | None, None]:
                return uncounted(window, now, second, request_id), None

            await self._quietly(held.key, undo, "rate_limit_undo_failed")

    def _give_back(self, admission: Admission) -> None:
        """Undo in the background (for a caller that is gone), keeping the task referenced."""
        task = asyncio.create_task(self._undo(admission))
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)

    async def _quietly(self, key: str, change: Change, event: str) -> None:
        try:
            self._check_connected()
            await self.store.apply(key, change)
        except Unchecked as exc:
            self._outage(exc)
        except Exception as exc:
            log.warning(event, scope_key=key, error=str(exc) or type(exc).__name__)

    # ----------------------------------------------------------------------------- outages

    def _check_connected(self) -> None:
        """Fail at once while NATS is down instead of waiting for KV calls to time out."""
        nc = getattr(self.js, "_nc", None)  # nats-py keeps the connection private
        if nc is not None and not nc.is_connected:
            raise Unchecked("not connected to NATS")

    def _outage(self, exc: Exception) -> None:
        if not self._in_outage:
            self._in_outage = True
            log.warning("rate_limits_unchecked", fail_open=self.fail_open, error=str(exc) or type(exc).__name__)

    def _recovered(self) -> None:
        if self._in_outage:
            self._in_outage = False
            log.info("rate_limits_checked_again")
