"""py-spy profiles of the stack's Python processes during a measured window, and their summary.

py-spy records with `--format raw --nolineno`: collapsed stacks, one sample group a line,
`frame;frame;...;leaf COUNT`, each frame `function (file)`; with `--subprocesses` (the edge's
Granian processes) the first frame is `process PID:"command line"`. Such a file loads as is in
speedscope (https://www.speedscope.app) or flamegraph.pl. A function's own time is the samples in
which it is the leaf. Samples are taken only from the thread holding the GIL (`--gil`): waiting
threads are left out (py-spy's own idle detection misses some of them when the core is busy),
and so is native code that released the GIL (chdb's queries, Granian's Rust threads between
calls into Python); native code that keeps the GIL shows under the Python function calling it.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.procs import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "bench" / "results"
_RECORD = re.compile(r"(.+?) (\d+)$", re.MULTILINE | re.DOTALL)  # a command line in a frame may span lines
_PROCESS_FRAMES = re.compile(r'^(?:process \d+:".*?"(?:;|$))+', re.DOTALL)  # the edge's: Granian's main, then a worker
NO_PYTHON_FRAME = "(no Python frame)"
_LINE_NUMBER = re.compile(r":\d+\)$")
PYSPY_GRACE_S = 30  # after its duration, how long py-spy gets to write its file


@dataclass(frozen=True)
class Summary:
    samples: int
    top: list[tuple[str, int]]  # (function, own samples), most first


def own_time(collapsed: str, most: int = 15) -> Summary:
    """Aggregate collapsed stacks by leaf function (process frames dropped, line numbers folded)."""
    own: Counter[str] = Counter()
    total = 0
    for match in _RECORD.finditer(collapsed):
        stack, count = _PROCESS_FRAMES.sub("", match.group(1).strip()), int(match.group(2))
        leaf = _LINE_NUMBER.sub(")", stack.rsplit(";", 1)[-1]) if stack else NO_PYTHON_FRAME
        own[leaf] += count
        total += count
    return Summary(total, own.most_common(most))


def format_summary(name: str, summary: Summary, window_s: float, rate: int, cpu_s: float) -> str:
    """Markdown lines: the top functions by own time, as a share of the samples.

    A thread holds the GIL also while the scheduler has it wait for a core, so the samples add up
    to wall time holding the GIL, not to CPU time: compare shares, not seconds.
    """
    lines = [
        f"#### {name}: top {len(summary.top)} functions by own time",
        f"{summary.samples} samples at {rate}/s (the GIL held {summary.samples / rate:.1f} s of the {window_s:.1f} s window; "
        f"the process used {cpu_s:.2f} CPU s); native code that released the GIL, such as chdb's threads, is not in it",
        "",
        "| own % | samples | function (file) |",
        "|---:|---:|---|",
    ]
    for function, count in summary.top:
        share = count * 100.0 / summary.samples if summary.samples else 0.0
        lines.append(f"| {share:.1f} | {count} | `{function}` |")
    return "\n".join(lines)


def pyspy_binary() -> str | None:
    """py-spy from this interpreter's environment (the `test` extra installs it), else from PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def git_commit() -> str:
    """The short commit of the checkout, `+` when it has uncommitted changes; `unknown` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def profile_path(stamp: str, commit: str, target: str, phase: str, process: str) -> Path:
    """bench/results/<UTC time>-<commit>-<target>-<phase>-<process>.txt"""
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{stamp}-{commit}-{target}-{phase}-{process}")
    return RESULTS_DIR / f"{safe}.txt"


@dataclass
class Recording:
    name: str
    path: Path
    proc: asyncio.subprocess.Process
    log: Path


async def start_recording(
    binary: str, name: str, pid: int, subprocesses: bool, seconds: float, path: Path, rate: int
) -> Recording:
    """Start `py-spy record` on `pid` for the window: `seconds` rounded up to whole seconds (py-spy's
    unit), and one more, so that the recorder outlives the window it profiles."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [binary, "record", "--pid", str(pid), "--duration", str(math.ceil(seconds) + 1), "--rate", str(rate)]
    args += ["--format", "raw", "--nolineno", "--gil", "--output", str(path)]
    if subprocesses:
        args.append("--subprocesses")
    log = path.with_suffix(".log")
    with open(log, "wb") as out:  # noqa: ASYNC230 - opened once per recording
        proc = await asyncio.create_subprocess_exec(*args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Recording(name, path, proc, log)


async def finish(recording: Recording, seconds: float) -> str | None:
    """Wait for py-spy to write its file; the collapsed stacks, or None (py-spy's output is kept beside)."""
    deadline = time.monotonic() + seconds + 1 + PYSPY_GRACE_S
    try:
        await asyncio.wait_for(recording.proc.wait(), max(1.0, deadline - time.monotonic()))
    except TimeoutError:
        recording.proc.kill()
        await recording.proc.wait()
    if recording.proc.returncode == 0 and recording.path.exists():
        recording.log.unlink(missing_ok=True)
        return recording.path.read_text(errors="replace")
    return None
