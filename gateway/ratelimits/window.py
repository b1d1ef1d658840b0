"""Sliding one-minute windows kept as per-second counts: the record, the arithmetic, the headers.

Nothing here does I/O, so every boundary can be tested with an explicit `now`.

Why per-second counts summed over the last minute (a request log at one-second resolution):
- fixed minute windows (what LiteLLM does) admit twice the limit across a boundary (60 requests
  at 0:59, 60 more at 1:00) and free every caller at the same instant, so all refused clients
  retry together;
- a log of each request's timestamp is exact but grows with the limit: a 10 000 rpm key would
  rewrite 10 000 timestamps on every compare-and-set;
- GCRA / token buckets are compact but read "per minute" as a refill rate: after a burst of N
  they refill continuously, so up to ~2N pass within one minute, and "when does the window
  free" has no answer for the retry-after header.
Counting requests (and tokens) per epoch second and summing the last `SPAN` (61) seconds keeps a
record of at most 61 numbers per dimension, never admits more than the limit in ANY 60-second
span (a request counts from its second's start until 61 s later: at least 60 s and at most 61 s
after it was made) and says exactly when the next request fits. The price: a refused caller may
wait up to one second longer than a perfect log would make it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

from llmgw.contracts import RateWindow, kv_key

WINDOW = 60  # seconds a request (or a token) counts against a per-minute limit, at least
SPAN = WINDOW + 1  # seconds a one-second count stays in the window, from the start of its second


class Limit(msgspec.Struct, frozen=True):
    """One rate limit covering a request. Nothing set: the limit is free (no KV call)."""

    scope: str  # "key:<hash>", "user:<id>", "team:<id>", "org:<id>", "deployment:<id>"
    label: str  # how the error names it: "key", "user", "team", "deployment gpt-4/0"
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.max_parallel is not None


EMPTY = RateWindow()


class Quota(msgspec.Struct, frozen=True, kw_only=True):
    """What one limit leaves after a request: the values of the x-ratelimit-* headers."""

    limit_requests: int | None = None
    remaining_requests: int = 0
    reset_requests: float = 0.0  # seconds until no request counts any more
    limit_tokens: int | None = None
    remaining_tokens: int = 0
    reset_tokens: float = 0.0  # seconds until no token counts any more


class Refusal(msgspec.Struct, frozen=True):
    """Why a limit refuses a request, and when to come back."""

    what: str  # REQUESTS, TOKENS or PARALLEL
    allowed: int
    retry_after: float  # seconds


REQUESTS = "requests per minute"
TOKENS = "tokens per minute"
PARALLEL = "parallel requests"


def scope_key(scope: str) -> str:
    """KV key of a scope: `key.<b64 id>`; ids may hold characters KV keys may not."""
    kind, sep, ident = scope.partition(":")
    if sep and kind.isalnum():
        return f"{kind}.{kv_key(ident)}"
    return kv_key(scope)


def second_of(now: float) -> int:
    return math.floor(now)


def in_window(counts: dict[int, int], now: float) -> int:
    """Sum of the counts still in the window at `now`."""
    return sum(c for s, c in counts.items() if s + SPAN > now)


def until_below(counts: dict[int, int], now: float, limit: int) -> float:
    """Seconds until fewer than `limit` are counted (0 when that is already so)."""
    if limit <= 0:
        return float(WINDOW)  # nothing ever fits
    held = in_window(counts, now)
    wait = 0.0
    for s in sorted(s for s in counts if s + SPAN > now):
        if held < limit:
            break
        held -= counts[s]
        wait = s + SPAN - now
    return wait


def until_empty(counts: dict[int, int], now: float) -> float:
    """Seconds until nothing is counted any more."""
    live = [s for s in counts if s + SPAN > now]
    return max(live) + SPAN - now if live else 0.0


def live_slots(slots: dict[str, float], now: float) -> int:
    return sum(1 for expires_at in slots.values() if expires_at > now)


def refusal(window: RateWindow, now: float, limit: Limit) -> Refusal | None:
    """The first of the limit's bounds this request would break, or None when it fits."""
    if limit.rpm is not None and in_window(window.requests, now) >= limit.rpm:
        return Refusal(REQUESTS, limit.rpm, until_below(window.requests, now, limit.rpm))
    if limit.tpm is not None and in_window(window.tokens, now) >= limit.tpm:
        return Refusal(TOKENS, limit.tpm, until_below(window.tokens, now, limit.tpm))
    if limit.max_parallel is not None and live_slots(window.slots, now) >= limit.max_parallel:
        # Slots free when requests end, which nobody can predict: come back in a second.
        return Refusal(PARALLEL, limit.max_parallel, 1.0)
    return None


def quota(window: RateWindow, now: float, limit: Limit) -> Quota:
    requests, tokens = in_window(window.requests, now), in_window(window.tokens, now)
    return Quota(
        limit_requests=limit.rpm,
        remaining_requests=max((limit.rpm or 0) - requests, 0),
        reset_requests=until_empty(window.requests, now),
        limit_tokens=limit.tpm,
        remaining_tokens=max((limit.tpm or 0) - tokens, 0),
        reset_tokens=until_empty(window.tokens, now),
    )


def _live(counts: dict[int, int], now: float) -> dict[int, int]:
    return {s: c for s, c in counts.items() if s + SPAN > now and c > 0}


def pruned(window: RateWindow, now: float) -> RateWindow:
    """The window without counts that left it and without expired slots."""
    return RateWindow(
        requests=_live(window.requests, now),
        tokens=_live(window.tokens, now),
        slots={r: e for r, e in window.slots.items() if e > now},
        updated_at=now,
    )


def counted(
    window: RateWindow, now: float, limit: Limit, request_id: str, expires_at: float
) -> tuple[RateWindow | None, int | None]:
    """(the window with the request counted and its slot taken, or None when nothing needs
    writing (a tpm-only limit); the second the request was counted in, or None)."""
    if limit.rpm is None and limit.max_parallel is None:
        return None, None
    window = pruned(window, now)
    second = second_of(now) if limit.rpm is not None else None
    requests, slots = window.requests, window.slots
    if second is not None:
        requests = {**requests, second: requests.get(second, 0) + 1}
    if limit.max_parallel is not None:
        slots = {**slots, request_id: expires_at}
    return msgspec.structs.replace(window, requests=requests, slots=slots), second


def uncounted(window: RateWindow, now: float, second: int | None, request_id: str) -> RateWindow | None:
    """The window without a request that was counted but not admitted (None: nothing to undo)."""
    in_requests = second is not None and window.requests.get(second, 0) > 0 and second + SPAN > now
    if not in_requests and request_id not in window.slots:
        return None
    window = pruned(window, now)
    requests = window.requests
    if in_requests:
        requests = {s: c - (s == second) for s, c in requests.items() if c - (s == second) > 0}
    slots = {r: e for r, e in window.slots.items() if r != request_id}
    return msgspec.structs.replace(window, requests=requests, slots=slots)


def settled(window: RateWindow, now: float, request_id: str, tokens: int) -> RateWindow | None:
    """The window after a request ended: its slot freed, its tokens counted now (None: no change)."""
    if tokens <= 0 and request_id not in window.slots:
        return None
    window = pruned(window, now)
    counts = window.tokens
    if tokens > 0:
        second = second_of(now)
        counts = {**counts, second: counts.get(second, 0) + tokens}
    slots = {r: e for r, e in window.slots.items() if r != request_id}
    return msgspec.structs.replace(window, tokens=counts, slots=slots)


# ------------------------------------------------------------------------------------- headers


def reset_text(seconds: float) -> str:
    """A duration the way OpenAI writes x-ratelimit-reset-*: `20ms`, `8.64s`, `6m0s`."""
    millis = max(math.ceil(seconds * 1000 - 1e-6), 0)
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{text}s" if minutes else f"{text}s"


def retry_after_text(seconds: float) -> str:
    """Whole seconds, rounded up, at least 1 (the retry-after header)."""
    return str(max(math.ceil(seconds - 1e-9), 1))


def quota_headers(quotas: Iterable[Quota]) -> dict[str, str]:
    """x-ratelimit-* headers of the tightest limits: the requests values of the limit with the
    fewest requests left, the tokens values of the one with the fewest tokens left."""
    quotas = list(quotas)
    headers: dict[str, str] = {}
    by_requests = [q for q in quotas if q.limit_requests is not None]
    if by_requests:
        q = min(by_requests, key=lambda q: (q.remaining_requests, q.limit_requests))
        headers["x-ratelimit-limit-requests"] = str(q.limit_requests)
        headers["x-ratelimit-remaining-requests"] = str(q.remaining_requests)
        headers["x-ratelimit-reset-requests"] = reset_text(q.reset_requests)
    by_tokens = [q for q in quotas if q.limit_tokens is not None]
    if by_tokens:
        q = min(by_tokens, key=lambda q: (q.remaining_tokens, q.limit_tokens))
        headers["x-ratelimit-limit-tokens"] = str(q.limit_tokens)
        headers["x-ratelimit-remaining-tokens"] = str(q.remaining_tokens)
        headers["x-ratelimit-reset-tokens"] = reset_text(q.reset_tokens)
    return headers
