"""Subprocess helpers for the benchmarks: start the fake upstream, wait for readiness, stop cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start_fake_process(
    api_key: str | None = None, timeout_s: float = 15, module: str = "bench.fake_openai"
) -> tuple[asyncio.subprocess.Process, int]:
    """Run `python -m <module>` (a fake upstream, or another server with the fakes' command line)
    on a free port; returns (process, port) once it printed READY."""
    args = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0"]
    if api_key:
        args += ["--api-key", api_key]
    proc = await asyncio.create_subprocess_exec(*args, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
    except TimeoutError:
        line = b""
    if not line.startswith(b"READY "):
        await stop_process(proc)
        raise RuntimeError(f"fake upstream did not start (first output line: {line!r})")
    return proc, int(line.split()[1])


async def start_logged_process(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """Start a process in its own session, stdout and stderr going to `log_path`."""
    with open(log_path, "wb") as log:  # noqa: ASYNC230 - opened once per process start
        return await asyncio.create_subprocess_exec(
            *args,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


async def stop_process(proc: asyncio.subprocess.Process, grace_s: float = 15) -> tuple[bool, str]:
    """SIGTERM the process, wait up to `grace_s`, then SIGKILL its process group (which we created).

    Returns (whether it exited by itself, how it ended).
    """
    began = time.monotonic()
    graceful, outcome = True, f"had already exited with {proc.returncode}"
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
            outcome = f"exited with {proc.returncode} {time.monotonic() - began:.1f} s after SIGTERM"
        except TimeoutError:
            graceful, outcome = False, f"did not exit within {grace_s:g} s of SIGTERM: killed"
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group, e.g. children of a killed parent
    except ProcessLookupError:
        pass
    await proc.wait()
    return graceful, outcome


async def wait_ready(url: str, timeout_s: float, proc: asyncio.subprocess.Process | None = None) -> bool:
    """Poll GET `url` until it answers 200; False on timeout or if `proc` exits first."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if proc is not None and proc.returncode is not None:
                return False
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return True
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.25)
    return False
