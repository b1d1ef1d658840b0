"""Does a running batch slow interactive requests down?

Starts the fake OpenAI upstream and `llmgw up`, then sends interactive chat requests at a steady
rate (open loop, non-streaming) twice: alone, and while a batch of `--lines` chat lines runs (the
Batch API: the JSONL uploaded with `POST /v1/files`, the batch made with `POST /v1/batches`). Batch
lines go on the batch-priority queue, which workers read only when no interactive request waits,
and, while interactive traffic is present, batch work yields to it (gateway/batches/pace.py), so
the interactive p99 should stay within 20% of what it is alone. `--rounds N` measures N such pairs
one after the other (each with a batch of its own, cancelled after its run but the last), so that
what else the machine is doing falls on both sides alike; the ratio is also given over all rounds.
`--settle S` runs S seconds of interactive traffic, not measured, before each measured run: the
steady state then, without the moment the traffic comes to a batch running at full speed (its
lines in flight, and metering's backlog of their usage, still to drain).
Prints a table of p50 and p99 alone and during the batch, the batch lines done meanwhile, and, once
the last batch is over (or at `--batch-timeout`), its status and counts. It reports, it does not
assert.

Run: .venv/bin/python -m bench.batch_interference [--rate 50] [--seconds 20] [--lines 10000]
         [--rounds 1] [--settle 0] [--batch-timeout 600] [--env NAME=VALUE ...] [--llmgw-cmd PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

from bench import loadgen
from bench.loadgen import LoadResult, chat_body
from bench.overhead import CHAT_PATH, MASTER_KEY, MODEL, UPSTREAM_KEY, start_gateway
from bench.procs import start_fake_process, stop_process

TARGET_P99_RATIO = 1.2
DONE = {"completed", "failed", "cancelled", "expired"}


def batch_file(lines: int) -> bytes:
    """`lines` chat requests in the Batch API's JSONL."""
    out = io.BytesIO()
    for i in range(lines):
        line = {"custom_id": f"line-{i}", "method": "POST", "url": CHAT_PATH, "body": chat_body(MODEL, 16)}
        out.write(msgspec.json.encode(line) + b"\n")
    return out.getvalue()


async def upload_batch_file(client: httpx.AsyncClient, lines: int) -> str:
    upload = await client.post("/v1/files", data={"purpose": "batch"}, files={"file": ("lines.jsonl", batch_file(lines))})
    upload.raise_for_status()
    return str(upload.json()["id"])


async def start_batch(client: httpx.AsyncClient, file_id: str) -> str:
    made = await client.post("/v1/batches", json={"input_file_id": file_id, "endpoint": CHAT_PATH, "completion_window": "24h"})
    made.raise_for_status()
    return str(made.json()["id"])


async def cancel_batch(client: httpx.AsyncClient, batch_id: str, timeout_s: float) -> dict:
    """Cancel the batch and wait until it ended (its lines in flight finish first)."""
    (await client.post(f"/v1/batches/{batch_id}/cancel")).raise_for_status()
    deadline = time.monotonic() + timeout_s
    state = await batch_state(client, batch_id)
    while state["status"] not in DONE and time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # (polling the API the way a client does)
        state = await batch_state(client, batch_id)
    return state


async def batch_state(client: httpx.AsyncClient, batch_id: str) -> dict:
    answer = await client.get(f"/v1/batches/{batch_id}")
    answer.raise_for_status()
    return answer.json()


async def wait_running(client: httpx.AsyncClient, batch_id: str, timeout_s: float) -> dict:
    """The batch once lines are being done (or it ended, or the timeout passed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = await batch_state(client, batch_id)
        if state["status"] in DONE or state["request_counts"]["completed"] > 0 or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.2)  # (polling the API the way a client does)


def row(label: str, result: LoadResult) -> str:
    return f"| {label} | {result.ok} | {result.errors} | {result.latency(50):.2f} | {result.latency(99):.2f} |"


def pooled(label: str, results: list[LoadResult]) -> LoadResult:
    """The rounds' runs as one: every latency of every round."""
    whole = LoadResult(label, sum(r.duration_s for r in results))
    for r in results:
        whole.sent += r.sent
        whole.ok += r.ok
        whole.errors += r.errors
        whole.latencies_ms += r.latencies_ms
    return whole


def p99_ratio(during: LoadResult, alone: LoadResult) -> float:
    return during.latency(99) / alone.latency(99) if alone.latency(99) > 0 else float("nan")


async def main_async(args: argparse.Namespace) -> int:
    fake_proc, fake_port = await start_fake_process(api_key=UPSTREAM_KEY)
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-bench-batch-"))
    gateway_proc = None
    try:
        try:
            env = dict(item.split("=", 1) for item in args.env)
            gateway_proc, base_url = await start_gateway(args.llmgw_cmd, fake_port, workdir, env)
        except (RuntimeError, OSError) as exc:
            print(f"llmgw did not start: {exc}", file=sys.stderr)
            return 1
        url, headers = base_url + CHAT_PATH, {"Authorization": f"Bearer {MASTER_KEY}"}
        body = chat_body(MODEL, 16)
        await loadgen.open_loop(url, body, rate=args.rate, seconds=3, headers=headers, label="warm-up")
        alones: list[LoadResult] = []
        durings: list[LoadResult] = []
        lines_done: list[int] = []
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
            file_id = await upload_batch_file(client, args.lines)
            settings: list[LoadResult] = []  # (the unmeasured runs before the batch's)

            async def settle(label: str) -> None:
                if args.settle > 0:
                    settings.append(
                        await loadgen.open_loop(url, body, rate=args.rate, seconds=args.settle, headers=headers, label=label)
                    )

            for round_ in range(1, args.rounds + 1):
                await settle("settling alone")
                alone = await loadgen.open_loop(url, body, rate=args.rate, seconds=args.seconds, headers=headers, label="alone")
                print(f"round {round_}: {alone.summary()}", flush=True)
                batch_id = await start_batch(client, file_id)
                await wait_running(client, batch_id, 60)
                await settle("settling beside the batch")
                print(f"round {round_}: {settings[-1].summary()}" if settings else "", flush=True)
                before = await batch_state(client, batch_id)
                during = await loadgen.open_loop(
                    url, body, rate=args.rate, seconds=args.seconds, headers=headers, label="during the batch"
                )
                after = await batch_state(client, batch_id)
                print(f"round {round_}: {during.summary()}", flush=True)
                alones.append(alone)
                durings.append(during)
                lines_done.append(after["request_counts"]["completed"] - before["request_counts"]["completed"])
                if round_ < args.rounds:  # (the next round's alone run has no batch beside it)
                    await cancel_batch(client, batch_id, args.batch_timeout)
            alone_since = time.monotonic()  # the last batch runs with no interactive traffic from now
            ended_by = alone_since + args.batch_timeout
            final = after
            while final["status"] not in DONE and time.monotonic() < ended_by:
                await asyncio.sleep(0.5)  # (polling the API the way a client does)
                final = await batch_state(client, batch_id)
            alone_for = time.monotonic() - alone_since
        print(f"\n### interactive chat at {args.rate:g}/s, alone and while a {args.lines}-line batch runs\n")
        print("| interactive | ok | errors | p50 ms | p99 ms | p99 / alone | batch lines/s |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for n, (alone, during, done) in enumerate(zip(alones, durings, lines_done, strict=True), start=1):
            label = f" (round {n})" if args.rounds > 1 else ""
            print(row(f"alone{label}", alone) + " | |")
            print(row(f"during the batch{label}", during) + f" {p99_ratio(during, alone):.2f} | {done / args.seconds:.0f} |")
        alone, during = pooled("alone", alones), pooled("during", durings)
        ratio = p99_ratio(during, alone)
        if args.rounds > 1:
            print(row("alone, all rounds", alone) + " | |")
            print(row("during, all rounds", during) + f" {ratio:.2f} | {sum(lines_done) / during.duration_s:.0f} |")
        verdict = "within" if ratio <= TARGET_P99_RATIO else "NOT within"
        print(f"\np99 during / alone: {ratio:.2f} ({verdict} {TARGET_P99_RATIO:.1f})")
        print(f"p50 during / alone: {during.latency(50) / alone.latency(50):.2f} (steadier than p99 on a shared machine)")
        print(f"batch lines done during the measured runs: {sum(lines_done)} ({sum(lines_done) / during.duration_s:.0f}/s)")
        counts = final["request_counts"]
        print(
            f"last batch {batch_id}: {final['status']}, {counts['completed']} completed, {counts['failed']} failed "
            f"of {counts['total']}"
        )
        alone_lines = counts["completed"] - after["request_counts"]["completed"]
        print(f"its lines with no interactive traffic: {alone_lines} in {alone_for:.1f}s ({alone_lines / alone_for:.0f}/s)")
        return 0
    finally:
        if gateway_proc is not None:
            await stop_process(gateway_proc)
        await stop_process(fake_proc)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_interference", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50, help="interactive requests/s (open loop)")
    parser.add_argument("--seconds", type=float, default=20, help="measured time of each interactive run")
    parser.add_argument("--lines", type=int, default=10000, help="lines of the batch")
    parser.add_argument("--batch-timeout", type=float, default=600, help="seconds to wait for the batch to end")
    parser.add_argument(
        "--settle",
        type=float,
        default=0,
        help="seconds of interactive traffic, not measured, before each measured run (the batch's switch to its trickle)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="alone/during pairs, one after the other (a batch each, cancelled but the last)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set for llmgw up (repeatable); e.g. LLMGW_BATCH_YIELD_LINES=256 LLMGW_BATCH_YIELD_PAUSE=0: no yielding",
    )
    parser.add_argument("--llmgw-cmd", default=str(Path(sys.executable).parent / "llmgw"), help="command for llmgw")
    return loadgen.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
