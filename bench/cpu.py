"""CPU per request of each of llmgw's processes, with their memory, threads and (optionally) profiles.

Starts the fake OpenAI upstream and `llmgw up` (or, with `--target floor`, bench.floor's bare
stack), then runs two phases, each a closed loop at `--connections` (32) for `--seconds` after
`--warmup`: whole answers (max_tokens 16) and streams (max_tokens 13: 13 content chunks). Around
each measured window it reads utime + stime of every process (/proc/<pid>/stat, which covers all
of a process's threads) and reports, for each process of the stack and for the load generator
(this process) and the fake upstream beside them, CPU seconds per 1,000 requests (= CPU ms per
request), the share of one core, and at the end of the window RSS, PSS and threads. llmgw's total
leaves out the load generator, the fake and py-spy.

--pin        llmgw's processes (nats-server included) on CPU 0, the load generator and the fake on CPU 1
--idle S     instead of the load: each process's CPU over S seconds with no request (% of one core)
--profile    py-spy on each Python process of the stack during each window (bench/results/), and
             the top 15 functions by own time of each
--json PATH  the numbers as JSON as well

Run: .venv/bin/python -m bench.cpu [--target llmgw|floor] [--seconds 10] [--warmup 3]
         [--connections 32] [--pin] [--idle S] [--profile] [--json PATH] [--llmgw-cmd PATH]
Exit status 0 whenever it measured, 1 when the stack did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cpu_profile, loadgen
from bench.cpu_proc import Footprint, footprint, is_python, off_core, pin, snapshot, task_ids, tree, usage
from bench.cpu_report import markdown
from bench.cpu_stacks import Stack, floor_stack, llmgw_stack
from bench.loadgen import LoadResult, chat_body
from bench.overhead import MODEL, OBSERVE_ENV, UPSTREAM_KEY, start_observing
from bench.procs import start_fake_process, stop_process

STACK_CPUS = {0}  # --pin: llmgw's processes
LOAD_CPUS = {1}  # --pin: the load generator, the fake upstream, py-spy


@dataclass(frozen=True)
class Phase:
    name: str
    label: str
    stream: bool
    max_tokens: int


PHASES = (
    Phase("whole", "whole answers (max_tokens 16)", False, 16),
    Phase("stream", "streams (13 content chunks)", True, 13),
)


@dataclass
class Row:
    name: str
    in_llmgw: bool
    cpu_s: float
    lost: int  # processes of the group that ended in the window (their last CPU time is missing)
    memory: Footprint


@dataclass
class Window:
    phase: str
    label: str
    seconds: float
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    profiles: dict[str, dict] = field(default_factory=dict)  # process -> {path, samples, top}

    @property
    def llmgw_cpu_s(self) -> float:
        return sum(r.cpu_s for r in self.rows if r.in_llmgw)


@dataclass
class Run:
    target: str
    pinned: bool
    connections: int
    cores: int
    commit: str
    started_utc: str
    loadavg_before: str
    profile_rate: int
    loadavg_after: str = ""
    windows: list[Window] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def outside_groups(fake_pid: int, profilers: list[int]) -> dict[str, list[int]]:
    groups = {"load generator": [os.getpid()], "fake upstream": tree(fake_pid)}
    if profilers:
        groups["py-spy"] = profilers
    return groups


def pin_all(stack: Stack, fake_pid: int) -> tuple[int, int]:
    """--pin: every thread of the stack's processes on STACK_CPUS, of the rest on LOAD_CPUS; threads pinned."""
    inside = pin([pid for pids in stack.groups().values() for pid in pids], STACK_CPUS)
    return inside, pin([os.getpid(), *tree(fake_pid)], LOAD_CPUS)


async def measure(stack: Stack, fake_pid: int, args: argparse.Namespace, phase: Phase | None, run: Run) -> Window:
    """One measured window: the phase's closed loop (after its warm-up), or `--idle` seconds of nothing."""
    body = chat_body(MODEL, phase.max_tokens, stream=phase.stream) if phase else {}
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    seconds = args.seconds if phase else args.idle

    def load(duration: float, label: str) -> Coroutine[Any, Any, LoadResult]:
        return loadgen.closed_loop(stack.url, body, connections=args.connections, seconds=duration,
                                   headers=headers, stream=bool(phase and phase.stream), label=label)  # fmt: skip

    if phase:
        print((await load(args.warmup, f"{phase.name} warm-up")).summary(), flush=True)
    else:
        await asyncio.sleep(args.warmup)  # the start-up's last work settles
    if args.pin:
        pin_all(stack, fake_pid)
    name = phase.name if phase else "idle"
    recordings = await start_profiles(stack, args, run, name, seconds) if args.profile else []
    profilers = [r.proc.pid for r in recordings]
    before = {**stack.groups(), **outside_groups(fake_pid, profilers)}
    snaps = {group: snapshot(pids) for group, pids in before.items()}
    began = time.monotonic()
    result = await load(seconds, phase.name) if phase else None
    if result is None:
        await asyncio.sleep(seconds)
    else:
        print(result.summary(), flush=True)
    window = Window(name, phase.label if phase else f"idle, {seconds:g} s without requests", time.monotonic() - began)
    inside = stack.groups()
    for group, pids in {**inside, **outside_groups(fake_pid, profilers)}.items():
        used = usage(snaps.get(group, snapshot([])), snapshot(pids))
        window.rows.append(Row(group, group in inside, used.cpu_s, used.lost, footprint(pids)))
    if result is not None:
        window.ok, window.errors, window.error_samples = result.ok, result.errors, result.error_samples[:2]
    for recording in recordings:
        collapsed = await cpu_profile.finish(recording, seconds)
        if collapsed is None:
            run.notes.append(f"py-spy failed on {recording.name} ({name}); its output: {recording.log}")
            continue
        summary = cpu_profile.own_time(collapsed)
        window.profiles[recording.name] = {"path": str(recording.path), "samples": summary.samples, "top": summary.top}
    return window


async def start_profiles(
    stack: Stack, args: argparse.Namespace, run: Run, phase: str, seconds: float
) -> list[cpu_profile.Recording]:
    binary = cpu_profile.pyspy_binary()
    assert binary is not None  # checked in main()
    recordings = []
    for name, pids in stack.groups().items():
        if not is_python(pids[0]):
            continue
        path = cpu_profile.profile_path(run.started_utc, run.commit, run.target, phase, name)
        recording = await cpu_profile.start_recording(binary, name, pids[0], len(pids) > 1, seconds, path, args.rate)
        if args.pin:
            pin([recording.proc.pid], LOAD_CPUS)
        recordings.append(recording)
    return recordings


def write_json(path: str, run: Run) -> None:
    Path(path).write_text(json.dumps(asdict(run), indent=2) + "\n")


async def main_async(args: argparse.Namespace) -> int:
    run = Run(args.target, args.pin, args.connections, os.cpu_count() or 0, cpu_profile.git_commit(),
              datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), loadavg(), args.rate)  # fmt: skip
    if args.pin:
        pin([os.getpid()], LOAD_CPUS)  # the fake and the stack start from here: they inherit it until pinned
    fake_proc, fake_port = await start_fake_process(api_key=UPSTREAM_KEY)
    env, sink_proc, _ = await start_observing(args.observe)
    run.notes.append(f"observing: {args.observe} ({' '.join(f'{k}={v}' for k, v in env.items()) or 'defaults'})")
    try:
        stack_cm = floor_stack(fake_port) if args.target == "floor" else llmgw_stack(args.llmgw_cmd, fake_port, env)
        try:
            async with stack_cm as stack:
                if args.pin:
                    inside, outside = pin_all(stack, fake_proc.pid)
                    run.notes.append(f"pinned {inside} threads of {stack.name} on CPU 0 and {outside} others on CPU 1")
                phases = [None] if args.idle else list(PHASES)
                for phase in phases:
                    run.windows.append(await measure(stack, fake_proc.pid, args, phase, run))
                if args.pin:
                    stray = off_core([pid for pids in stack.groups().values() for pid in pids], STACK_CPUS)
                    threads = sum(len(task_ids(pid)) for pids in stack.groups().values() for pid in pids)
                    run.notes.append(f"at the end {threads - stray} of {stack.name}'s {threads} threads were on CPU 0 only")
        except (RuntimeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    finally:
        await stop_process(fake_proc)
        if sink_proc is not None:
            await stop_process(sink_proc)
    run.loadavg_after = loadavg()
    print()
    print(markdown(run))
    if args.json:
        write_json(args.json, run)
        print(f"\nwrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("llmgw", "floor"), default="llmgw", help="the stack to measure")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds of each phase")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load before each measured window")
    parser.add_argument("--connections", type=int, default=32, help="closed-loop connections")
    parser.add_argument("--pin", action="store_true", help="llmgw on CPU 0, load generator and fake upstream on CPU 1")
    parser.add_argument("--idle", type=float, default=0, metavar="S", help="measure S seconds without load instead")
    parser.add_argument("--profile", action="store_true", help="py-spy each Python process during each window")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument(
        "--observe",
        choices=tuple(OBSERVE_ENV),
        default="metrics",
        help="as bench.overhead's: off, metrics (default), traced, sampled",
    )
    parser.add_argument("--llmgw-cmd", default=str(Path(sys.executable).parent / "llmgw"), help="command for llmgw")
    args = parser.parse_args(argv)
    if args.pin and not {*STACK_CPUS, *LOAD_CPUS} <= os.sched_getaffinity(0):
        parser.error(
            f"--pin needs CPUs {sorted({*STACK_CPUS, *LOAD_CPUS})}; this process may use {sorted(os.sched_getaffinity(0))}"
        )
    if args.profile and cpu_profile.pyspy_binary() is None:
        parser.error("--profile needs py-spy (pip install -e '.[test]')")
    if args.seconds <= 0 or args.warmup < 0 or args.idle < 0 or args.connections < 1:
        parser.error("need --seconds > 0, --warmup >= 0, --idle >= 0 and --connections >= 1")
    return loadgen.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
