"""Rate limits shared by several edges through the ratelimits KV bucket (real nats-server).

Each "edge" is a RateLimiter on its own NATS connection, as separate edge processes have; they
are driven concurrently from one event loop, so their compare-and-sets really race.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import msgspec
import nats
import pytest
from structlog.testing import capture_logs

from gateway.errors import GatewayError
from gateway.ratelimits import Admission, Limit, RateLimiter, RateWindow
from gateway.ratelimits.window import in_window, live_slots, scope_key
from llmgw.contracts import ErrorCode, ErrorType, Subjects
from llmgw.kv import open_bucket
from tests.procs import NatsServer
from tests.waiting import eventually

pytestmark = pytest.mark.integration

_window = msgspec.json.Decoder(RateWindow)


# ----------------------------------------------------------------------------------- helpers


class Edge:
    """One edge's view: its own connection and limiter."""

    def __init__(self, nc, limiter: RateLimiter) -> None:
        self.nc = nc
        self.limiter = limiter

    @classmethod
    async def start(cls, url: str, prefix: str, **options) -> Edge:
        nc = await nats.connect(url, **options.pop("connect", {}))
        limiter = RateLimiter(nc.jetstream(), Subjects(prefix), **options)
        await limiter.start()
        return cls(nc, limiter)

    async def stop(self) -> None:
        await self.limiter.stop()
        if not self.nc.is_closed:
            await self.nc.close()


def scope() -> str:
    return f"key:{uuid.uuid4().hex}"


def rid() -> str:
    return uuid.uuid4().hex


def deadline(seconds: float = 30.0) -> float:
    return time.time() + seconds


async def attempt(limiter: RateLimiter, limits: list[Limit]) -> Admission | GatewayError:
    try:
        return await limiter.admit(limits, rid(), deadline())
    except GatewayError as exc:
        return exc


async def stored(nc, prefix: str, limit_scope: str) -> RateWindow:
    """The scope's window as stored in KV (read directly, not through any limiter's copy)."""
    kv = await open_bucket(nc.jetstream(), Subjects(prefix).ratelimits_bucket)
    return _window.decode((await kv.get(scope_key(limit_scope))).value)


async def eventually_admitted(limiter: RateLimiter, limits: list[Limit]) -> Admission:
    """Admit as soon as the limits allow it (a refusal is "not yet"; the last one is named on a timeout)."""
    return await eventually(
        lambda: limiter.admit(limits, rid(), deadline()),
        "the limits to admit",
        timeout=15,
        interval=0.1,
        retrying=(GatewayError,),
    )


def assert_refused(result, label: str, amount: int, what: str) -> GatewayError:
    assert isinstance(result, GatewayError), result
    assert (result.status, result.type, result.code) == (429, ErrorType.RATE_LIMIT, ErrorCode.RATE_LIMITED)
    assert f"rate limit of the {label} reached: {amount} {what}" in result.message, result.message
    return result


def reset_seconds(text: str) -> float:
    """Parse an OpenAI-style duration (`250ms`, `8.6s`, `1m0.5s`)."""
    m = re.fullmatch(r"(?:(\d+)ms)|(?:(?:(\d+)m)?(\d+(?:\.\d+)?)s)", text)
    assert m, text
    if m.group(1) is not None:
        return int(m.group(1)) / 1000
    return int(m.group(2) or 0) * 60 + float(m.group(3))


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture
async def edges(nats_server, bus_prefix):
    started = [await Edge.start(nats_server.url, bus_prefix) for _ in range(3)]
    yield started
    for edge in started:
        await edge.stop()


@pytest.fixture
def observer(nats_client):
    return nats_client


# ----------------------------------------------------------------------------------------- tests


async def test_three_edges_together_admit_exactly_the_rpm(edges, observer, bus_prefix) -> None:
    limit = Limit(scope(), "key", rpm=60)
    results = await asyncio.gather(*(attempt(edges[i % 3].limiter, [limit]) for i in range(200)))
    admitted = [r for r in results if isinstance(r, Admission)]
    refused = [r for r in results if not isinstance(r, Admission)]
    assert len(admitted) == 60
    for r in refused:
        assert_refused(r, "key", 60, "requests per minute")
    window = await stored(observer, bus_prefix, limit.scope)
    assert in_window(window.requests, time.time()) == 60


async def test_edges_racing_in_waves_admit_exactly_the_rpm(edges, observer, bus_prefix) -> None:
    """Small simultaneous waves: each wave's edges write the same window at once, so most
    admissions go through a lost compare-and-set and a re-check."""
    limit = Limit(scope(), "deployment gpt-4/0", rpm=60)
    admitted = 0
    for _ in range(30):
        wave = await asyncio.gather(*(attempt(edges[i % 3].limiter, [limit]) for i in range(6)))
        admitted += sum(isinstance(r, Admission) for r in wave)
        for r in wave:
            if not isinstance(r, Admission):
                assert_refused(r, "deployment gpt-4/0", 60, "requests per minute")
    assert admitted == 60
    assert in_window((await stored(observer, bus_prefix, limit.scope)).requests, time.time()) == 60


async def test_parallel_slots_hold_across_edges_and_free_on_release(edges, observer, bus_prefix) -> None:
    limit = Limit(scope(), "user", max_parallel=5)
    results = await asyncio.gather(*(attempt(edges[i % 3].limiter, [limit]) for i in range(30)))
    admitted = [r for r in results if isinstance(r, Admission)]
    assert len(admitted) == 5
    for r in results:
        if not isinstance(r, Admission):
            assert_refused(r, "user", 5, "parallel requests")
            assert r.headers["retry-after"] == "1"
    assert live_slots((await stored(observer, bus_prefix, limit.scope)).slots, time.time()) == 5

    # One request ends on some edge: another edge gets its slot, and then no more.
    await edges[0].limiter.release(admitted[0], 0)
    again = await attempt(edges[2].limiter, [limit])
    assert isinstance(again, Admission)
    assert_refused(await attempt(edges[1].limiter, [limit]), "user", 5, "parallel requests")

    for admission in [*admitted[1:], again]:
        await edges[1].limiter.release(admission, 0)
    assert live_slots((await stored(observer, bus_prefix, limit.scope)).slots, time.time()) == 0
    results = await asyncio.gather(*(attempt(edges[i % 3].limiter, [limit]) for i in range(9)))
    assert sum(isinstance(r, Admission) for r in results) == 5


async def test_tokens_recorded_at_release_count_against_tpm(edges) -> None:
    a, b, _ = (e.limiter for e in edges)
    limit = Limit(scope(), "team", tpm=1000)
    first = await a.admit([limit], rid(), deadline())
    assert first.headers()["x-ratelimit-remaining-tokens"] == "1000"
    await a.release(first, 600)
    second = await a.admit([limit], rid(), deadline())
    assert second.headers()["x-ratelimit-limit-tokens"] == "1000"
    assert second.headers()["x-ratelimit-remaining-tokens"] == "400"
    await a.release(second, 600)
    refused = assert_refused(await attempt(a, [limit]), "team", 1000, "tokens per minute")
    assert refused.headers["x-ratelimit-limit-tokens"] == "1000"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 61

    # Another edge, limit with a slot (so its admission writes): the compare-and-set makes it
    # decide on the tokens edge `a` recorded, however far behind its own copy is.
    shared = Limit(scope(), "team", tpm=1000, max_parallel=10)
    held = await a.admit([shared], rid(), deadline())
    await a.release(held, 1000)
    assert_refused(await attempt(b, [shared]), "team", 1000, "tokens per minute")


async def test_release_twice_counts_tokens_once(edges, observer, bus_prefix) -> None:
    limit = Limit(scope(), "key", tpm=10_000, max_parallel=2)
    admission = await edges[0].limiter.admit([limit], rid(), deadline())
    await edges[0].limiter.release(admission, 300)
    await edges[0].limiter.release(admission, 300)
    window = await stored(observer, bus_prefix, limit.scope)
    assert in_window(window.tokens, time.time()) == 300 and window.slots == {}


async def test_headers_and_retry_after(edges) -> None:
    a, b, c = (e.limiter for e in edges)
    key = Limit(scope(), "key", rpm=3, tpm=5000)
    team = Limit(f"team:{uuid.uuid4().hex}", "team", rpm=100)
    started = time.time()
    admissions = [await edge.admit([key, team], rid(), deadline()) for edge in (a, b, c)]
    headers = admissions[-1].headers()
    assert headers["x-ratelimit-limit-requests"] == "3"  # the key: fewer requests left than the team
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-tokens"] == "5000"
    assert headers["x-ratelimit-remaining-tokens"] == "5000"
    assert 59.0 < reset_seconds(headers["x-ratelimit-reset-requests"]) <= 61.0
    assert admissions[0].headers()["x-ratelimit-remaining-requests"] == "2"

    refused = assert_refused(await attempt(a, [key, team]), "key", 3, "requests per minute")
    retry = int(refused.headers["retry-after"])
    # The first request's second leaves the window 61 s after it began: between 60 and 61 s
    # after `started`, less the time this test has taken since.
    assert 60 - (time.time() - started) - 1 <= retry <= 61
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


async def test_a_refusal_on_the_team_gives_back_the_keys_count(edges, observer, bus_prefix) -> None:
    a, b, _ = (e.limiter for e in edges)
    key = Limit(scope(), "key", rpm=10, max_parallel=10)
    team = Limit(f"team:{uuid.uuid4().hex}", "team", rpm=2)
    for _ in range(2):
        await a.admit([key, team], rid(), deadline())
    assert_refused(await attempt(b, [key, team]), "team", 2, "requests per minute")

    window = await stored(observer, bus_prefix, key.scope)
    assert in_window(window.requests, time.time()) == 2
    assert live_slots(window.slots, time.time()) == 2
    # The key alone (another team): 10 - 2 counted before - this one = 7 left.
    other_team = Limit(f"team:{uuid.uuid4().hex}", "team", rpm=100)
    admission = await a.admit([key, other_team], rid(), deadline())
    assert admission.headers()["x-ratelimit-remaining-requests"] == "7"


async def test_a_cancelled_admission_leaves_nothing_behind(edges, observer, bus_prefix) -> None:
    """Callers that go away before or in the middle of their admission leave no count and no slot."""
    limiter = edges[0].limiter
    key = Limit(scope(), "key", rpm=1000, max_parallel=1000)
    team = Limit(f"team:{uuid.uuid4().hex}", "team", rpm=1000, max_parallel=1000)
    key_window = scope_key(key.scope)

    async def key_taken(request_id: str) -> None:
        """Until this edge wrote the request's slot on the key (its admission is now on the team):
        checked at every turn of the event loop, so the admission is caught between its two steps."""
        await eventually(
            lambda: request_id in getattr(limiter.store.windows.items.get(key_window), "slots", {}),
            "the key's slot to be written",
            timeout=10,
            interval=0,
        )

    for stage in ("at once", "after the key") * 10:
        request_id = rid()
        task = asyncio.create_task(limiter.admit([key, team], request_id, deadline()))
        if stage == "after the key":
            await key_taken(request_id)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    admitted = [await limiter.admit([key, team], rid(), deadline()) for _ in range(5)]
    assert all(len(a.held) == 2 for a in admitted)

    async def settled_to(n: int) -> bool:
        now = time.time()
        windows = [await stored(observer, bus_prefix, s) for s in (key.scope, team.scope)]
        return all(in_window(w.requests, now) == n and live_slots(w.slots, now) == n for w in windows)

    await eventually(
        lambda: settled_to(len(admitted)), "the cancelled admissions to leave no counts or slots", timeout=10, interval=0.05
    )


async def test_limits_with_nothing_set_touch_no_kv(nats_server, bus_prefix) -> None:
    edge = await Edge.start(nats_server.url, bus_prefix)
    await edge.nc.close()  # any KV call would now fail
    admission = await edge.limiter.admit([Limit(scope(), "key"), Limit("deployment:d/0", "deployment d/0")], rid(), deadline())
    assert admission.held == [] and admission.headers() == {}
    await edge.limiter.release(admission, 500)
    limited = await attempt(edge.limiter, [Limit(scope(), "key", rpm=1)])  # the same edge with a limit: 503
    assert isinstance(limited, GatewayError) and limited.status == 503
    await edge.stop()


async def test_slots_of_a_crashed_edge_expire(nats_server, bus_prefix, edges) -> None:
    crashing = await Edge.start(nats_server.url, bus_prefix, slot_grace=0.0)
    limit = Limit(scope(), "key", max_parallel=1)
    await crashing.limiter.admit([limit], rid(), time.time() + 1.0)
    await crashing.nc.close()  # gone without releasing
    assert_refused(await attempt(edges[0].limiter, [limit]), "key", 1, "parallel requests")
    reclaimed = await eventually_admitted(edges[0].limiter, [limit])
    assert reclaimed.held[0].slot
    await crashing.stop()


async def test_fail_closed_and_fail_open_on_a_closed_connection(nats_server, bus_prefix) -> None:
    closed = await Edge.start(nats_server.url, bus_prefix)
    opened = await Edge.start(nats_server.url, bus_prefix, fail_open=True)
    limit = Limit(scope(), "key", rpm=5, max_parallel=5)
    await closed.nc.close()
    await opened.nc.close()

    result = await attempt(closed.limiter, [limit])
    assert isinstance(result, GatewayError)
    assert (result.status, result.type, result.code) == (503, ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE)
    assert "rate limits cannot be checked" in result.message and result.headers == {"retry-after": "1"}

    with capture_logs() as logs:
        admissions = [await opened.limiter.admit([limit], rid(), deadline()) for _ in range(10)]  # past the rpm
        for admission in admissions:
            await opened.limiter.release(admission, 10)
    assert all(a.held == [] for a in admissions)
    warnings = [e for e in logs if e["event"] == "rate_limits_unchecked"]
    assert len(warnings) == 1 and warnings[0]["fail_open"] is True and warnings[0]["log_level"] == "warning"
    await closed.stop()
    await opened.stop()


async def test_nats_outage_fails_closed_then_recovers(tmp_path: Path, bus_prefix) -> None:
    server = NatsServer(store_dir=tmp_path / "store", log_dir=tmp_path).start()
    lost, back = asyncio.Event(), asyncio.Event()

    async def on_lost() -> None:
        lost.set()

    async def on_back() -> None:
        back.set()

    connect = dict(disconnected_cb=on_lost, reconnected_cb=on_back, reconnect_time_wait=0.2, max_reconnect_attempts=-1)
    closed = await Edge.start(server.url, bus_prefix, connect=connect)
    opened = await Edge.start(server.url, bus_prefix, fail_open=True, connect={"max_reconnect_attempts": -1})
    limit = Limit(scope(), "key", rpm=100, max_parallel=10)
    try:
        before = await closed.limiter.admit([limit], rid(), deadline())
        server.stop()
        await asyncio.wait_for(lost.wait(), 10)
        with capture_logs() as logs:
            result = await attempt(closed.limiter, [limit])
            assert isinstance(result, GatewayError) and result.status == 503, result
            assert isinstance(await attempt(closed.limiter, [limit]), GatewayError)
            await closed.limiter.release(before, 50)  # never raises; the slot expires by itself
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["rate_limits_unchecked"]
        assert isinstance(await attempt(opened.limiter, [limit]), Admission)  # fail open admits

        server = NatsServer(store_dir=tmp_path / "store", log_dir=tmp_path, port=server.port).start()
        await asyncio.wait_for(back.wait(), 15)
        with capture_logs() as logs:
            after = await eventually_admitted(closed.limiter, [limit])
        assert after.held and any(e["event"] == "rate_limits_checked_again" for e in logs)
    finally:
        await closed.stop()
        await opened.stop()
        server.stop()


async def test_kv_errors_fail_closed(nats_server, bus_prefix) -> None:
    """The connection is up but the bucket is gone: the write fails, the request is refused."""
    edge = await Edge.start(nats_server.url, bus_prefix)
    limit = Limit(scope(), "key", rpm=10)
    await edge.limiter.admit([limit], rid(), deadline())
    await edge.nc.jetstream().delete_key_value(Subjects(bus_prefix).ratelimits_bucket)
    result = await attempt(edge.limiter, [limit])
    assert isinstance(result, GatewayError) and result.status == 503 and result.code == ErrorCode.UNAVAILABLE
    await edge.stop()
