"""Compare async HTTP clients as llmgw's upstream client, against the fake OpenAI upstream.

For each client and each in-flight level (1, 16, 64) it runs a closed loop of non-streaming
chat completions for a fixed time (--seconds, default 5) after a short warm-up, and reports
requests/s, p50/p99 latency and the client's CPU time per request as a markdown table. Clients:
  httpx            httpx.AsyncClient() with its default pool (100 connections, 20 kept alive)
  httpx+aiohttp    httpx.AsyncClient(transport=httpx_aiohttp.AiohttpTransport())
  llmgw worker     workers.http_client.UpstreamClient: httpx requests with a pre-built URL and
                   headers, handed straight to that transport (what llmgw's workers do)
  aiohttp          aiohttp.ClientSession() with its default connector (100 connections)
The fake upstream runs in its own process; client and server share the machine's cores.

Run: .venv/bin/python -m bench.http_clients [--seconds 5] [--levels 1,16,64]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import httpx_aiohttp
import msgspec

from bench.loadgen import LoadResult, chat_body, run
from bench.procs import start_fake_process, stop_process
from workers.http_client import UpstreamClient

API_KEY = "sk-upstream-bench"
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
WARMUP_S = 1.0

Send = Callable[[], Awaitable[None]]  # one request; raises on failure


async def measure(send: Send, in_flight: int, seconds: float, label: str) -> tuple[LoadResult, float]:
    """Closed loop: `in_flight` workers calling `send` back to back for `seconds`; also returns
    this process's CPU time per request in microseconds (the client's cost; the server is elsewhere)."""
    result = LoadResult(label, seconds)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            result.sent += 1
            try:
                await send()
            except Exception as exc:  # any client failure counts as an error of this cell
                result.record_error(f"{type(exc).__name__}: {exc}")
                continue
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
            result.ok += 1

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    result.duration_s = time.perf_counter() - began
    return result, (time.process_time() - cpu) / max(result.sent, 1) * 1e6


def httpx_sender(client: httpx.AsyncClient, url: str, body: bytes) -> Send:
    async def send() -> None:
        response = await client.post(url, content=body, headers=HEADERS)
        await response.aread()
        response.raise_for_status()

    return send


def upstream_client_sender(client: UpstreamClient, url: str, body: bytes) -> Send:
    target, headers, timeout = httpx.URL(url), httpx.Headers(HEADERS), httpx.Timeout(30.0)

    async def send() -> None:
        response = await client.send(client.request(target, headers, body, timeout))
        try:
            await client.read(response)
        finally:
            await response.aclose()
        response.raise_for_status()

    return send


def aiohttp_sender(session: aiohttp.ClientSession, url: str, body: bytes) -> Send:
    async def send() -> None:
        async with session.post(url, data=body, headers=HEADERS) as response:
            await response.read()
            response.raise_for_status()

    return send


async def bench_clients(url: str, levels: list[int], seconds: float) -> list[tuple[LoadResult, float]]:
    body = msgspec.json.encode(chat_body("bench-model", 16))
    httpx_default = httpx.AsyncClient()
    httpx_aio = httpx.AsyncClient(transport=httpx_aiohttp.AiohttpTransport())
    upstream = UpstreamClient(max_connections=100)
    session = aiohttp.ClientSession()
    clients = {
        "httpx": httpx_sender(httpx_default, url, body),
        "httpx+aiohttp": httpx_sender(httpx_aio, url, body),
        "llmgw worker": upstream_client_sender(upstream, url, body),
        "aiohttp": aiohttp_sender(session, url, body),
    }
    results = []
    try:
        for name, send in clients.items():
            for level in levels:
                await measure(send, level, WARMUP_S, "warm-up")
                result, cpu_us = await measure(send, level, seconds, f"{name} @{level}")
                print(f"{result.summary()}; client CPU {cpu_us:.0f} us/request", flush=True)
                results.append((result, cpu_us))
    finally:
        await httpx_default.aclose()
        await httpx_aio.aclose()
        await upstream.aclose()
        await session.close()
    return results


def markdown_table(results: list[tuple[LoadResult, float]]) -> str:
    rows = [
        "| client | in flight | req/s | p50 ms | p99 ms | client CPU us/req | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r, cpu_us in results:
        name, level = r.label.split(" @")
        rows.append(f"| {name} | {level} | {r.rps:.0f} | {r.latency(50):.2f} | {r.latency(99):.2f} | {cpu_us:.0f} | {r.errors} |")
    return "\n".join(rows)


async def main_async(args: argparse.Namespace) -> None:
    proc, port = await start_fake_process(api_key=API_KEY)
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        results = await bench_clients(url, args.levels, args.seconds)
    finally:
        await stop_process(proc)
    print()
    print(markdown_table(results))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_clients", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per cell")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64], help="requests in flight")
    run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
