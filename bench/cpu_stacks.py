"""The stacks bench/cpu.py measures, started the way bench/overhead.py and bench/floor.py start them.

Each stack names its processes: `groups()` reads them now (a process the supervisor restarted
has a new pid), each group being a root process and its descendants (the edge: Granian's main
process and its workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from bench import floor
from bench.cpu_proc import tree
from bench.overhead import CHAT_PATH, GATEWAY_STOP_GRACE_S, MASTER_KEY, start_gateway
from bench.procs import stop_process
from bench.soak import Processes, descendants

FLOOR_STOP_GRACE_S = 5
# the order of the rows: the request's path first, then what runs beside it
ORDER = ("edge", "nats-server", "worker", "metering", "supervisor", "other")


@dataclass
class Stack:
    name: str
    url: str  # the chat completions URL
    api_key: str
    groups: Callable[[], dict[str, list[int]]]


def _ordered(groups: dict[str, list[int]]) -> dict[str, list[int]]:
    def rank(name: str) -> tuple[int, str]:
        base = name.split("-")[0] if name.startswith("worker") else name
        return (ORDER.index(base) if base in ORDER else len(ORDER), name)

    return {name: groups[name] for name in sorted(groups, key=rank)}


@contextlib.asynccontextmanager
async def llmgw_stack(llmgw_cmd: str, fake_port: int, env: dict[str, str] | None = None) -> AsyncIterator[Stack]:
    """`llmgw up` against the fake upstream (`env` added to its environment): nats-server, edge,
    worker(s), metering and their supervisor."""
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-cpu-"))
    proc = None
    try:
        proc, base_url = await start_gateway(llmgw_cmd, fake_port, workdir, env)
        supervisor = proc.pid
        processes = Processes(workdir / "llmgw.log")

        def groups() -> dict[str, list[int]]:
            processes.refresh()
            found = {name: tree(pid) for name, pid in processes.pids.items()}
            found["supervisor"] = [supervisor]
            claimed = {pid for pids in found.values() for pid in pids}
            rest = [pid for pid in descendants(supervisor) if pid not in claimed]
            if rest:
                found["other"] = rest
            return _ordered(found)

        yield Stack("llmgw", base_url + CHAT_PATH, MASTER_KEY, groups)
    finally:
        if proc is not None:
            _, outcome = await stop_process(proc, GATEWAY_STOP_GRACE_S)
            print(f"llmgw {outcome}", flush=True)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def floor_stack(fake_port: int) -> AsyncIterator[Stack]:
    """bench.floor's bare stack: nats-server, a bare edge on Granian and a bare worker."""
    procs: list[asyncio.subprocess.Process] = []
    with tempfile.TemporaryDirectory(prefix="llmgw-cpu-floor-") as tmp:
        try:
            procs, base_url = await floor.start_floor(fake_port, Path(tmp))
            named = dict(zip(floor.FLOOR_PROCESSES, procs, strict=True))

            def groups() -> dict[str, list[int]]:
                return _ordered({name: tree(proc.pid) for name, proc in named.items()})

            yield Stack("floor", base_url + CHAT_PATH, "unused", groups)
        finally:
            for proc in reversed(procs):
                await stop_process(proc, FLOOR_STOP_GRACE_S)
