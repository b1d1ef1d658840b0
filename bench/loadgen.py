"""Asyncio HTTP load generator (aiohttp client) for llmgw's benchmarks.

Two modes, both bounded in time and in request count, both only against loopback hosts:
  closed loop: C connections each send the next request as soon as the previous one ends;
  open loop:   R requests/s on a fixed schedule; latency is measured from each request's
               *scheduled* send time, so a stalled server cannot hide its queueing delay
               (no coordinated omission).
Non-streaming latency is the time to the full response body. Streaming requests record the
time to the first SSE `data:` event carrying content (TTFC) and the total time; a stream that
does not end with `data: [DONE]` counts as an error.

Library:  result = await closed_loop(url, body, connections=64, seconds=10, headers=...)
          result = await open_loop(url, body, rate=200, seconds=10, stream=True)
CLI:      python -m bench.loadgen http://127.0.0.1:4000/v1/chat/completions --connections 64
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import msgspec

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
MAX_REQUESTS = 2_000_000
MAX_ERROR_SAMPLES = 5
REQUEST_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 30.0


@dataclass
class LoadResult:
    label: str
    duration_s: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    ttfc_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)  # open loop: actual minus scheduled send time

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def latency(self, pct: float) -> float:
        return percentile(self.latencies_ms, pct)

    def ttfc(self, pct: float) -> float:
        return percentile(self.ttfc_ms, pct)

    def record_error(self, sample: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(sample[:300])

    def summary(self) -> str:
        text = (
            f"{self.label}: {self.ok} ok, {self.errors} errors in {self.duration_s:.1f}s = {self.rps:.0f} req/s; "
            f"latency ms p50 {self.latency(50):.2f} p90 {self.latency(90):.2f} p99 {self.latency(99):.2f}"
        )
        if self.ttfc_ms:
            text += f"; TTFC ms p50 {self.ttfc(50):.2f} p90 {self.ttfc(90):.2f} p99 {self.ttfc(99):.2f}"
        if self.send_lag_ms:
            lag = self.send_lag_ms
            text += f"; send lag ms p50 {percentile(lag, 50):.2f} p99 {percentile(lag, 99):.2f}"
        for sample in self.error_samples:
            text += f"\n  error: {sample}"
        return text


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"loadgen only targets loopback hosts, not {host!r}")


def _has_content(event: bytes) -> bool:
    try:
        chunk = msgspec.json.decode(event)
        return bool(chunk["choices"][0]["delta"].get("content"))
    except (msgspec.DecodeError, KeyError, IndexError, TypeError, AttributeError):
        return False


class _Requester:
    """Sends one request and records its outcome into a LoadResult."""

    def __init__(self, session: aiohttp.ClientSession, url: str, body: bytes, headers: dict, stream: bool):
        self.session = session
        self.url = url
        self.body = body
        self.headers = {"Content-Type": "application/json", **headers}
        self.stream = stream

    async def send(self, result: LoadResult, start: float) -> None:
        """`start` is the perf_counter() time latency is measured from."""
        try:
            async with self.session.post(self.url, data=self.body, headers=self.headers) as response:
                if response.status >= 300:
                    text = await response.text(errors="replace")
                    result.record_error(f"HTTP {response.status}: {text}")
                    return
                if self.stream:
                    if not await self._read_stream(response, result, start):
                        result.record_error("stream ended without data: [DONE]")
                        return
                else:
                    await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            result.record_error(f"{type(exc).__name__}: {exc}")
            return
        result.latencies_ms.append((time.perf_counter() - start) * 1000)
        result.ok += 1

    async def _read_stream(self, response: aiohttp.ClientResponse, result: LoadResult, start: float) -> bool:
        first_content = None
        done = False
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            event = line[5:].strip()
            if event == b"[DONE]":
                done = True
            elif first_content is None and _has_content(event):
                first_content = time.perf_counter()
        if done and first_content is not None:
            result.ttfc_ms.append((first_content - start) * 1000)
        return done


def _session(pool_size: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=pool_size, limit_per_host=pool_size, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))


async def closed_loop(
    url: str,
    body: bytes | dict,
    *,
    connections: int,
    seconds: float,
    headers: dict | None = None,
    stream: bool = False,
    max_requests: int = MAX_REQUESTS,
    label: str = "",
) -> LoadResult:
    """`connections` workers, each sending back-to-back requests until `seconds` or `max_requests`."""
    check_loopback(url)
    payload = body if isinstance(body, bytes) else msgspec.json.encode(body)
    result = LoadResult(label or f"closed c={connections}", seconds)
    async with _session(connections) as session:
        requester = _Requester(session, url, payload, headers or {}, stream)
        began = time.perf_counter()
        deadline = began + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline and result.sent < max_requests:
                result.sent += 1
                await requester.send(result, time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(connections)))
        result.duration_s = time.perf_counter() - began
    return result


async def open_loop(
    url: str,
    body: bytes | dict,
    *,
    rate: float,
    seconds: float,
    headers: dict | None = None,
    stream: bool = False,
    max_in_flight: int = 4096,
    label: str = "",
) -> LoadResult:
    """Send `rate` requests/s for `seconds`; latency counts from each scheduled send time."""
    check_loopback(url)
    payload = body if isinstance(body, bytes) else msgspec.json.encode(body)
    total = min(int(rate * seconds), MAX_REQUESTS)
    result = LoadResult(label or f"open {rate:g}/s", seconds)
    in_flight: set[asyncio.Task] = set()
    async with _session(max_in_flight) as session:
        requester = _Requester(session, url, payload, headers or {}, stream)
        began = time.perf_counter()
        for i in range(total):
            scheduled = began + i / rate
            while (delay := scheduled - time.perf_counter()) > 0:  # noqa: ASYNC110 - a send schedule, not a wait for an event
                await asyncio.sleep(delay)  # may wake early: event-loop timers have 1 ms resolution
            result.send_lag_ms.append((time.perf_counter() - scheduled) * 1000)
            result.sent += 1
            if len(in_flight) >= max_in_flight:
                result.record_error(f"dropped: {max_in_flight} requests already in flight")
                continue
            task = asyncio.create_task(requester.send(result, scheduled))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=DRAIN_TIMEOUT_S)
        for task in list(in_flight):
            task.cancel()
            result.record_error("cancelled: still in flight after the drain timeout")
        result.duration_s = time.perf_counter() - began
    return result


def chat_body(model: str, max_tokens: int, stream: bool = False) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello to the benchmark please"}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def run(coro):
    """Run a coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description="HTTP load against a loopback URL")
    parser.add_argument("url", help="e.g. http://127.0.0.1:4000/v1/chat/completions")
    parser.add_argument("--connections", type=int, default=64, help="closed loop: connections in flight")
    parser.add_argument("--rate", type=float, default=0, help="open loop: requests/s (overrides --connections)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--api-key", default=None, help="sent as 'Authorization: Bearer <key>'")
    args = parser.parse_args(argv)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    body = chat_body(args.model, args.max_tokens, args.stream)
    if args.rate > 0:
        coro = open_loop(args.url, body, rate=args.rate, seconds=args.seconds, headers=headers, stream=args.stream)
    else:
        coro = closed_loop(
            args.url, body, connections=args.connections, seconds=args.seconds, headers=headers, stream=args.stream
        )
    print(run(coro).summary())


if __name__ == "__main__":
    main()
