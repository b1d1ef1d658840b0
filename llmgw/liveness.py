"""A heartbeat file for processes with no HTTP port (workers, metering): a container healthcheck
(`llmgw healthcheck worker|metering`) reads its age.

The file is touched by a task on the process's event loop, so a fresh file means the loop runs,
not only that the process exists. It is removed when the process stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path

HEARTBEAT_INTERVAL = 5.0  # seconds between two touches
HEARTBEAT_MAX_AGE = 30.0  # a heartbeat older than this: the process is not alive


def heartbeat_path(component: str, env: Mapping[str, str] | None = None) -> Path:
    """LLMGW_HEARTBEAT_FILE, or `llmgw-<component>.heartbeat` in the temporary directory."""
    env = os.environ if env is None else env
    given = env.get("LLMGW_HEARTBEAT_FILE")
    return Path(given) if given else Path(tempfile.gettempdir()) / f"llmgw-{component}.heartbeat"


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


async def _beat(path: Path, interval: float) -> None:
    while True:
        try:
            await asyncio.to_thread(touch, path)
        except OSError:
            pass  # (a full or read-only disk: the healthcheck will say so)
        await asyncio.sleep(interval)


async def with_heartbeat(main: Awaitable[None], path: Path, interval: float = HEARTBEAT_INTERVAL) -> None:
    """Await `main` while keeping the heartbeat file at `path` fresh; remove it afterwards."""
    beating = asyncio.create_task(_beat(path, interval), name="heartbeat")
    try:
        await main
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        await asyncio.to_thread(remove, path)


def heartbeat_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since the heartbeat file was touched; None when there is none."""
    try:
        touched = path.stat().st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - touched)
