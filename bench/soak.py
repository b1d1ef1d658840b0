"""Soak benchmark: does llmgw's memory stay flat under a steady load?

Starts the fake OpenAI upstream and `llmgw up` (as bench/overhead.py does), then sends a steady
open-loop load for `--duration` seconds (default 100 requests/s for 300 s, 30% of them streamed
with `include_usage`), while it samples the resident memory (VmRSS in /proc/<pid>/status) of the
edge (Granian's main process and its worker processes together), the provider worker, metering
and nats-server every `--interval` seconds. It prints one table row per sample, the load's
outcome, the usage rows metering stored, and a verdict per llmgw process: PASS when its last
sample is within `--tolerance` percent (10) of its first sample after the warm-up (60 s).
nats-server's memory is shown, not judged.

Exit status: 0 when every verdict is PASS, 1 when one is FAIL or the gateway did not start.

Run: .venv/bin/python -m bench.soak [--duration 300] [--rate 100] [--stream-share 0.3]
         [--interval 10] [--warmup 60] [--tolerance 10] [--llmgw-cmd PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import nats

from bench import loadgen
from bench.loadgen import LoadResult, chat_body
from bench.overhead import CHAT_PATH, GATEWAY_STOP_GRACE_S, MASTER_KEY, MODEL, UPSTREAM_KEY, start_gateway
from bench.procs import start_fake_process, stop_process
from llmgw.contracts import QueryRequest, Subjects, decode_query_result, encode_json

JUDGED = ("edge", "worker-0", "metering")  # the llmgw processes the verdict is about
SHOWN = (*JUDGED, "nats-server")
USAGE_WAIT_S = 60  # after the load, how long metering gets to store the last usage rows


@dataclass
class Sample:
    at_s: float
    rss_kb: dict[str, int]  # process name -> resident memory (kB), the edge's workers included


@dataclass
class Verdict:
    name: str
    first_kb: int
    last_kb: int
    tolerance_pct: float

    @property
    def change_pct(self) -> float:
        return (self.last_kb - self.first_kb) * 100.0 / self.first_kb if self.first_kb else float("inf")

    @property
    def ok(self) -> bool:
        return abs(self.change_pct) <= self.tolerance_pct


@dataclass
class Processes:
    """The pids of `llmgw up`'s children, read from the supervisor's `process_started` lines (a
    child restarted by the supervisor gets a new pid: counted in `restarts`)."""

    log_path: Path
    pids: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def refresh(self) -> None:
        seen: dict[str, list[int]] = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            if '"process_started"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            seen.setdefault(entry["process"], []).append(int(entry["pid"]))
        self.pids = {name: pids[-1] for name, pids in seen.items()}
        self.restarts = {name: len(pids) - 1 for name, pids in seen.items()}


def rss_kb(pid: int) -> int:
    """VmRSS of one process in kB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """`pid`'s children, grandchildren, ... (Granian's worker processes under the edge)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])  # after "pid (comm) state"
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def sample(processes: Processes, began: float) -> Sample:
    processes.refresh()
    memory = {}
    for name in SHOWN:
        pid = processes.pids.get(name)
        if pid is None:
            continue
        tree = [pid, *descendants(pid)] if name == "edge" else [pid]
        memory[name] = sum(rss_kb(p) for p in tree)
    return Sample(time.monotonic() - began, memory)


async def sample_every(interval_s: float, processes: Processes, began: float, samples: list[Sample], stop: asyncio.Event) -> None:
    while True:
        samples.append(sample(processes, began))
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
            samples.append(sample(processes, began))  # the last one, at the end of the load
            return
        except TimeoutError:
            pass


async def usage_rows(nats_url: str, wanted: int) -> int:
    """Usage rows metering has stored (all of them: the soak's gateway is its own), waiting up to
    USAGE_WAIT_S for `wanted`."""
    nc = await nats.connect(nats_url)
    try:
        subject = Subjects("llmgw").metering_query
        request = encode_json(QueryRequest("SELECT count() AS n FROM usage", {}))
        deadline = time.monotonic() + USAGE_WAIT_S
        while True:
            result = decode_query_result((await nc.request(subject, request, timeout=10)).data)
            count = int(result.rows[0][0]) if not result.error and result.rows else 0
            if count >= wanted or time.monotonic() > deadline:
                return count
            await asyncio.sleep(1)
    finally:
        await nc.close()


def nats_url_of(log_path: Path) -> str:
    for line in log_path.read_text(errors="replace").splitlines():
        if '"llmgw_up"' in line:
            return msgspec.json.decode(line)["nats"]
    raise RuntimeError("llmgw up did not say which NATS it runs")


def verdicts(samples: list[Sample], warmup_s: float, tolerance_pct: float) -> list[Verdict]:
    after = [s for s in samples if s.at_s >= warmup_s] or samples[-1:]
    first, last = after[0], samples[-1]
    return [Verdict(name, first.rss_kb.get(name, 0), last.rss_kb.get(name, 0), tolerance_pct) for name in JUDGED]


def report(args, samples: list[Sample], loads: list[LoadResult], stored: int, processes: Processes) -> tuple[str, bool]:
    def mb(kb: int | None) -> str:
        return f"{kb / 1024:.1f}" if kb else "-"

    lines = ["| t (s) | " + " | ".join(f"{n} RSS MB" for n in SHOWN) + " |", "|---:|" + "---:|" * len(SHOWN)]
    for s in samples:
        lines.append(f"| {s.at_s:.0f} | " + " | ".join(mb(s.rss_kb.get(n)) for n in SHOWN) + " |")
    lines.append("")
    sent = sum(r.sent for r in loads)
    for r in loads:
        lines.append(f"- {r.summary()}")
    lines.append(f"- usage rows stored by metering: {stored} for {sent} requests sent")
    restarted = {n: c for n, c in processes.restarts.items() if c}
    lines.append(f"- processes restarted by the supervisor: {restarted or 'none'}")
    lines.append("")
    results = verdicts(samples, args.warmup, args.tolerance)
    for v in results:
        lines.append(
            f"{'PASS' if v.ok else 'FAIL'} {v.name}: {mb(v.first_kb)} MB after the warm-up -> {mb(v.last_kb)} MB "
            f"at the end ({v.change_pct:+.1f}%, flat within {v.tolerance_pct:g}%)"
        )
    ok = all(v.ok for v in results) and not restarted
    lines.append(f"verdict: {'PASS' if ok else 'FAIL'} (memory flat from {args.warmup:g} s to {args.duration:g} s)")
    return "\n".join(lines), ok


async def soak(args: argparse.Namespace, gateway_url: str, processes: Processes) -> tuple[list[Sample], list[LoadResult]]:
    url = gateway_url + CHAT_PATH
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    stream_rate = args.rate * args.stream_share
    samples: list[Sample] = []
    stop = asyncio.Event()
    began = time.monotonic()
    sampler = asyncio.create_task(sample_every(args.interval, processes, began, samples, stop))
    loads = [
        loadgen.open_loop(url, chat_body(MODEL, 16), rate=args.rate - stream_rate, seconds=args.duration,
                          headers=headers, label=f"whole {args.rate - stream_rate:g}/s"),
    ]  # fmt: skip
    if stream_rate > 0:
        loads.append(loadgen.open_loop(url, chat_body(MODEL, 32, stream=True), rate=stream_rate, seconds=args.duration,
                                       headers=headers, stream=True, label=f"streamed {stream_rate:g}/s"))  # fmt: skip
    results = await asyncio.gather(*loads)
    stop.set()
    await sampler
    return samples, list(results)


async def main_async(args: argparse.Namespace) -> int:
    fake_proc, fake_port = await start_fake_process(api_key=UPSTREAM_KEY)
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-soak-"))
    gateway_proc = None
    try:
        try:
            gateway_proc, gateway_url = await start_gateway(args.llmgw_cmd, fake_port, workdir)
        except (RuntimeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        processes = Processes(workdir / "llmgw.log")
        print(f"soak: {args.rate:g} req/s ({args.stream_share:.0%} streamed) for {args.duration:g} s, "
              f"memory every {args.interval:g} s", flush=True)  # fmt: skip
        samples, loads = await soak(args, gateway_url, processes)
        stored = await usage_rows(nats_url_of(workdir / "llmgw.log"), sum(r.sent for r in loads))
        table, ok = report(args, samples, loads, stored, processes)
    finally:
        if gateway_proc is not None:
            _, outcome = await stop_process(gateway_proc, GATEWAY_STOP_GRACE_S)
            print(f"llmgw {outcome}", flush=True)
        await stop_process(fake_proc)
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of load")
    parser.add_argument("--rate", type=float, default=100, help="requests/s, whole and streamed together")
    parser.add_argument("--stream-share", type=float, default=0.3, help="part of the requests that are streamed")
    parser.add_argument("--interval", type=float, default=10, help="seconds between memory samples")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the reference sample")
    parser.add_argument("--tolerance", type=float, default=10, help="allowed memory change, percent")
    parser.add_argument("--llmgw-cmd", default=str(Path(sys.executable).parent / "llmgw"), help="command for llmgw")
    args = parser.parse_args(argv)
    if not 0 <= args.stream_share <= 1 or args.rate <= 0 or args.duration <= args.warmup:
        parser.error("need 0 <= --stream-share <= 1, --rate > 0 and --duration > --warmup")
    return loadgen.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
