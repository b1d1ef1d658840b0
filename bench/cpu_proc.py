"""What /proc says about a group of processes: CPU time, memory, threads, and pinning them to cores.

A process's CPU time is utime + stime of /proc/<pid>/stat. The kernel keeps that pair for the
whole thread group: every thread the process has, and every thread it had and that has exited,
so it is more exact than adding /proc/<pid>/task/*/stat (which would miss threads that ended in
the measured window). A group is a named list of pids (the edge: Granian's main process and its
worker processes); its CPU over a window is the sum of each pid's change, a pid that appeared in
the window counting from zero and one that vanished being reported as lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.soak import descendants, rss_kb

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    """The fields of one /proc/<pid>/stat line that the CPU report reads."""

    pid: int
    comm: str
    ppid: int
    utime: int  # clock ticks
    stime: int
    threads: int
    starttime: int  # clock ticks after boot: tells a pid from a later process with the same pid

    @property
    def ticks(self) -> int:
        return self.utime + self.stime


def parse_stat(text: str) -> Stat:
    """Parse a /proc/<pid>/stat line; `comm` may hold spaces and parentheses, so it ends at the last ')'."""
    opening, closing = text.index("("), text.rindex(")")
    rest = text[closing + 2 :].split()  # rest[0] is field 3 (state); field n is rest[n - 3]
    return Stat(
        pid=int(text[:opening]),
        comm=text[opening + 1 : closing],
        ppid=int(rest[1]),
        utime=int(rest[11]),
        stime=int(rest[12]),
        threads=int(rest[17]),
        starttime=int(rest[19]),
    )


def read_stat(pid: int) -> Stat | None:
    """None once the process is gone."""
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def parse_kb_fields(text: str) -> dict[str, int]:
    """`Name:   123 kB` lines (/proc/<pid>/status, smaps_rollup) -> {name: kB}; other lines are skipped."""
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        parts = value.split()
        if sep and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            found[name.strip()] = int(parts[0])
    return found


def pss_kb(pid: int) -> int:
    """Proportional set size from /proc/<pid>/smaps_rollup (shared pages split between their users); 0 if unreadable."""
    try:
        return parse_kb_fields(Path(f"/proc/{pid}/smaps_rollup").read_text()).get("Pss", 0)
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return 0


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    return [pid, *descendants(pid)]


def task_ids(pid: int) -> list[int]:
    """The thread ids of a process (empty once it is gone)."""
    try:
        return [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []


@dataclass
class Snapshot:
    """CPU ticks of each pid of a group at one moment, keyed by (pid, starttime)."""

    ticks: dict[tuple[int, int], int] = field(default_factory=dict)


def snapshot(pids: list[int]) -> Snapshot:
    taken = Snapshot()
    for pid in pids:
        stat = read_stat(pid)
        if stat is not None:
            taken.ticks[(pid, stat.starttime)] = stat.ticks
    return taken


@dataclass(frozen=True)
class Usage:
    """One group's CPU over a window: seconds used, and how many of its processes vanished in it."""

    cpu_s: float
    lost: int


def usage(before: Snapshot, after: Snapshot) -> Usage:
    """CPU used between two snapshots of a group; a process new in `after` counts from zero."""
    ticks = sum(value - before.ticks.get(key, 0) for key, value in after.ticks.items())
    lost = sum(1 for key in before.ticks if key not in after.ticks)
    return Usage(ticks / CLOCK_TICKS, lost)


@dataclass(frozen=True)
class Footprint:
    """Memory and threads of a group at one moment (summed over its processes)."""

    processes: int
    threads: int
    rss_kb: int
    pss_kb: int


def footprint(pids: list[int]) -> Footprint:
    stats = [s for s in (read_stat(pid) for pid in pids) if s is not None]
    return Footprint(
        processes=len(stats),
        threads=sum(s.threads for s in stats),
        rss_kb=sum(rss_kb(s.pid) for s in stats),
        pss_kb=sum(pss_kb(s.pid) for s in stats),
    )


def pin(pids: list[int], cpus: set[int]) -> int:
    """Set the affinity of every thread of every process in `pids` (threads they start later inherit
    it from the thread that starts them); returns how many threads were pinned."""
    pinned = 0
    for pid in pids:
        for tid in task_ids(pid):
            try:
                os.sched_setaffinity(tid, cpus)
                pinned += 1
            except (ProcessLookupError, PermissionError):
                pass
    return pinned


def off_core(pids: list[int], cpus: set[int]) -> int:
    """How many threads of `pids` may run elsewhere than `cpus` (a check of `pin`)."""
    count = 0
    for pid in pids:
        for tid in task_ids(pid):
            try:
                if os.sched_getaffinity(tid) != cpus:
                    count += 1
            except (ProcessLookupError, PermissionError):
                pass
    return count


def is_python(pid: int) -> bool:
    """Whether the process runs a Python interpreter (what py-spy can profile)."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("python")
    except OSError:
        return False
