"""The sliding rate-limit window's arithmetic and headers (gateway/ratelimits/window.py)."""

from __future__ import annotations

import re

import msgspec
import pytest

from gateway.ratelimits import Admission, Limit, RateWindow
from gateway.ratelimits.limiter import refused_error, unavailable_error
from gateway.ratelimits.window import (
    EMPTY,
    PARALLEL,
    REQUESTS,
    SPAN,
    TOKENS,
    Quota,
    counted,
    in_window,
    live_slots,
    pruned,
    quota,
    quota_headers,
    refusal,
    reset_text,
    retry_after_text,
    scope_key,
    settled,
    uncounted,
    until_below,
    until_empty,
)
from llmgw.contracts import ErrorCode, ErrorType

pytestmark = pytest.mark.unit

T0 = 1_700_000_000  # a whole epoch second


def admit(window: RateWindow, now: float, limit: Limit, rid: str = "r", expires_at: float = 0.0):
    """Check and count one request the way the limiter does; (new window, admitted?)."""
    if refusal(window, now, limit) is not None:
        return window, False
    new, _ = counted(window, now, limit, rid, expires_at or now + 600)
    return (new or window), True


# ------------------------------------------------------------------------------ window edges


def test_a_second_counts_for_61_seconds_from_its_start() -> None:
    counts = {T0: 1}
    assert in_window(counts, T0) == 1
    assert in_window(counts, T0 + 60.999) == 1
    assert in_window(counts, T0 + SPAN) == 0
    # A request at T0 + 0.999 is still counted a full 60 s later.
    assert in_window({T0: 1}, T0 + 0.999 + 60) == 1


def test_never_more_than_the_limit_in_any_60_second_span() -> None:
    limit = Limit("key:k", "key", rpm=10)
    window, admitted = EMPTY, []
    for step in range(4 * 300):  # every 0.25 s for five minutes, always trying
        now = T0 + 0.3 + step * 0.25
        window, ok = admit(window, now, limit, rid=str(step))
        if ok:
            admitted.append(now)
    for t in admitted:
        assert sum(1 for u in admitted if t - 60 < u <= t) <= 10
    # ... and the window does free: ten per 61 s over five minutes (plus the first burst).
    assert len(admitted) >= 10 * (300 // SPAN)


def test_no_double_burst_across_a_minute_boundary() -> None:
    """A fixed minute window would admit 60 at 0:59.5 and 60 more at 1:00.5; this one does not."""
    limit = Limit("key:k", "key", rpm=60)
    window = EMPTY
    for i in range(60):
        window, ok = admit(window, T0 + 59.5, limit, rid=str(i))
        assert ok
    window, ok = admit(window, T0 + 60.5, limit)
    assert not ok
    why = refusal(window, T0 + 60.5, limit)
    assert why.what == REQUESTS and why.allowed == 60
    assert why.retry_after == pytest.approx(T0 + 59 + SPAN - (T0 + 60.5))  # 59.5 s: the burst's second leaves
    window, ok = admit(window, T0 + 59 + SPAN, limit)
    assert ok


def test_until_below_walks_the_oldest_seconds_out() -> None:
    counts = {T0: 3, T0 + 10: 2}
    now = T0 + 20
    assert until_below(counts, now, 6) == 0.0
    assert until_below(counts, now, 5) == pytest.approx(T0 + SPAN - now)  # 3 leave, 2 < 5
    assert until_below(counts, now, 3) == pytest.approx(T0 + SPAN - now)
    assert until_below(counts, now, 2) == pytest.approx(T0 + 10 + SPAN - now)  # both seconds must go
    assert until_below(counts, now, 0) == 60.0  # nothing ever fits
    assert until_below({T0 - 100: 50}, now, 1) == 0.0  # long gone


def test_until_empty() -> None:
    assert until_empty({}, T0) == 0.0
    assert until_empty({T0: 1, T0 + 5: 1}, T0 + 10) == pytest.approx(T0 + 5 + SPAN - (T0 + 10))
    assert until_empty({T0: 1}, T0 + SPAN) == 0.0


def test_slots_count_until_they_expire() -> None:
    slots = {"a": T0 + 5.0, "b": T0 + 10.0}
    assert live_slots(slots, T0) == 2
    assert live_slots(slots, T0 + 5.0) == 1
    assert live_slots(slots, T0 + 10.0) == 0


# -------------------------------------------------------------------------------- decisions


def test_refusal_names_the_first_bound_broken() -> None:
    limit = Limit("key:k", "key", rpm=2, tpm=100, max_parallel=1)
    now = T0 + 30.5
    assert refusal(EMPTY, now, limit) is None
    full = RateWindow(requests={T0: 2})
    assert refusal(full, now, limit).what == REQUESTS
    spent = RateWindow(tokens={T0 + 1: 60, T0 + 2: 40})
    why = refusal(spent, now, limit)
    assert why.what == TOKENS and why.allowed == 100
    assert why.retry_after == pytest.approx(T0 + 1 + SPAN - now)  # 40 < 100 once the 60 leave
    busy = RateWindow(slots={"other": now + 1})
    why = refusal(busy, now, limit)
    assert why.what == PARALLEL and why.allowed == 1 and why.retry_after == 1.0
    assert refusal(RateWindow(slots={"other": now}), now, limit) is None  # expired slot


def test_counted_takes_only_what_the_limit_needs() -> None:
    now = T0 + 0.7
    new, second = counted(EMPTY, now, Limit("s:x", "x", tpm=10), "r1", now + 5)
    assert new is None and second is None  # tpm alone: nothing to write at admission
    new, second = counted(EMPTY, now, Limit("s:x", "x", rpm=10), "r1", now + 5)
    assert second == T0 and new.requests == {T0: 1} and new.slots == {}
    new, second = counted(new, now, Limit("s:x", "x", rpm=10, max_parallel=2), "r2", now + 5)
    assert new.requests == {T0: 2} and new.slots == {"r2": now + 5}
    new, second = counted(EMPTY, now, Limit("s:x", "x", max_parallel=2), "r3", now + 5)
    assert second is None and new.requests == {} and new.slots == {"r3": now + 5}


def test_writes_drop_what_left_the_window() -> None:
    old = RateWindow(requests={T0 - 100: 5, T0: 1}, tokens={T0 - 100: 7}, slots={"gone": T0 - 1.0, "live": T0 + 9.0})
    new, _ = counted(old, T0 + 0.5, Limit("s:x", "x", rpm=10), "r", T0 + 9)
    assert new.requests == {T0: 2} and new.tokens == {} and new.slots == {"live": T0 + 9.0}
    assert pruned(old, T0).updated_at == T0


def test_uncounted_takes_the_request_back() -> None:
    now = T0 + 3.2
    window = RateWindow(requests={T0: 2, T0 + 1: 1}, slots={"r": now + 9, "q": now + 9})
    back = uncounted(window, now, T0 + 1, "r")
    assert back.requests == {T0: 2} and back.slots == {"q": now + 9}
    assert uncounted(back, now, T0 + 1, "r") is None  # nothing left to undo
    # A second that has left the window is not touched (no negative counts).
    assert uncounted(RateWindow(requests={T0: 1}), T0 + SPAN, T0, "r") is None


def test_settled_frees_the_slot_and_counts_tokens_now() -> None:
    now = T0 + 42.9
    window = RateWindow(tokens={T0 + 42: 10}, slots={"r": now + 9})
    done = settled(window, now, "r", 25)
    assert done.tokens == {T0 + 42: 35} and done.slots == {}
    assert settled(done, now, "r", 0) is None
    assert settled(done, now + 1, "x", 5).tokens == {T0 + 42: 35, T0 + 43: 5}


def test_quota_remaining_never_negative() -> None:
    now = T0 + 1
    q = quota(RateWindow(requests={T0: 12}, tokens={T0: 999}), now, Limit("s:x", "x", rpm=10, tpm=500))
    assert q.remaining_requests == 0 and q.remaining_tokens == 0
    assert q.reset_requests == pytest.approx(T0 + SPAN - now) and q.reset_tokens == pytest.approx(T0 + SPAN - now)


# -------------------------------------------------------------------------------- records


def test_rate_window_round_trips_as_json() -> None:
    window = RateWindow(requests={T0: 3}, tokens={T0 + 1: 700}, slots={"req-1": T0 + 90.5}, updated_at=T0 + 0.5)
    data = msgspec.json.encode(window)
    assert msgspec.json.decode(data, type=RateWindow) == window
    assert msgspec.json.encode(EMPTY) == b"{}"


def test_scope_keys_are_valid_kv_keys_and_distinct() -> None:
    scopes = ["key:ab12", "user:ann@example.com", "team:t 1/x", "deployment:gpt-4/0", "odd scope", "user:ann"]
    keys = [scope_key(s) for s in scopes]
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert re.fullmatch(r"[-/_=.a-zA-Z0-9]+", key) and not key.startswith(".") and not key.endswith(".")
    assert keys[0].startswith("key.") and keys[1].startswith("user.") and keys[3].startswith("deployment.")


def test_limit_with_nothing_set_is_not_limited() -> None:
    assert not Limit("key:k", "key").limited
    assert Limit("key:k", "key", max_parallel=0).limited


# -------------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.02, "20ms"),
        (0.0001, "1ms"),
        (0.0, "0ms"),
        (1.0, "1s"),
        (8.64, "8.64s"),
        (360.0, "6m0s"),
        (60.5, "1m0.5s"),
        (61.0, "1m1s"),
        (59.9999, "1m0s"),
        (0.9999, "1s"),
        (-2.0, "0ms"),
    ],
)
def test_reset_text_is_openai_style(seconds: float, text: str) -> None:
    assert reset_text(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (41.0, "41")])
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, text: str) -> None:
    assert retry_after_text(seconds) == text


def test_headers_report_the_tightest_limits() -> None:
    key = Quota(
        limit_requests=10, remaining_requests=7, reset_requests=60.5, limit_tokens=1000, remaining_tokens=10, reset_tokens=3.0
    )
    team = Quota(
        limit_requests=100,
        remaining_requests=2,
        reset_requests=0.25,
        limit_tokens=50_000,
        remaining_tokens=40_000,
        reset_tokens=30.0,
    )
    parallel_only = Quota()
    assert quota_headers([key, team, parallel_only]) == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "250ms",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "10",
        "x-ratelimit-reset-tokens": "3s",
    }
    assert quota_headers([parallel_only]) == {}
    assert quota_headers([]) == {}
    assert Admission("r").headers() == {}


def test_refused_error_names_the_limit_and_when_to_retry() -> None:
    limit = Limit("deployment:gpt-4/0", "deployment gpt-4/0", rpm=60)
    window = RateWindow(requests={T0: 60})
    now = T0 + 20.25
    err = refused_error(limit, refusal(window, now, limit), quota(window, now, limit))
    assert err.status == 429 and err.type == ErrorType.RATE_LIMIT and err.code == ErrorCode.RATE_LIMITED
    assert "rate limit of the deployment gpt-4/0 reached: 60 requests per minute" in err.message
    assert err.headers["retry-after"] == "41"
    assert err.headers["x-ratelimit-limit-requests"] == "60"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.headers["x-ratelimit-reset-requests"] == "40.75s"
    assert "x-ratelimit-limit-tokens" not in err.headers

    down = unavailable_error()
    assert (down.status, down.code, down.headers) == (503, ErrorCode.UNAVAILABLE, {"retry-after": "1"})
    assert "rate limits cannot be checked" in down.message
