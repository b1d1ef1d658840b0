"""Agents that reach for outside hosts (the Codex and Claude Code CLIs) run, with the whole gateway
they talk to, in a network namespace that has only loopback.

The test calls `run_in_netns(module, ...)`: `unshare -n` (through a user namespace when not root)
starts `python -m <module> <args>` there with `lo` up. The module starts the gateway with
`offline_gateway` (nats-server, the fake OpenAI upstream, edge, worker and metering), runs its
agent, and prints one line, `RESULT <json>` (`print_result`), which `run_in_netns` reads back.
A machine where no network namespace can be made skips the test, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import UPSTREAM_KEY, Stack
from tests.procs import REPO, FakeUpstream, NatsServer
from tests.waiting import eventually_sync


def unshare_command() -> list[str]:
    """How this machine makes a network namespace (as root, or through a user namespace)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip is not installed: the agent cannot be kept off the network")
    command = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    probe = subprocess.run([*command, "ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"no network namespace can be made here ({probe.stderr.strip()[-300:]})")
    return command


def run_in_netns(module: str, *args: str, timeout: float = 600.0) -> dict[str, Any]:
    """Run `python -m module args...` in a namespace with only loopback; its RESULT, decoded."""
    command = unshare_command()
    inside = 'ip link set lo up && exec "$0" -m "$@"'
    done = subprocess.run(
        [*command, "sh", "-c", inside, sys.executable, module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, (done.stdout[-3000:], done.stderr[-3000:])
    return json.loads(line.removeprefix("RESULT "))


def print_result(result: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(result, default=str), flush=True)


@contextmanager
def offline_gateway(work: Path, prefix: str, config: Callable[[str], str]) -> Iterator[tuple[Stack, FakeUpstream]]:
    """nats-server, the fake OpenAI upstream and the gateway (its config made from the fake's
    base URL), all stopped again on the way out."""
    started: list[Any] = []
    try:
        nats = NatsServer(store_dir=work / "nats", log_dir=work).start()
        started.append(nats)
        upstream = FakeUpstream(work, UPSTREAM_KEY).start()
        started.append(upstream)
        stack = Stack(work, nats.url, prefix, upstream, {}, config=config(upstream.base_url)).start()
        started.append(stack)
        yield stack, upstream
    finally:
        for part in reversed(started):
            part.stop()


def usage_rows_of(stack: Stack, key_alias: str, calls: int) -> list[dict[str, Any]]:
    """The usage rows of the key (at least `calls` of them, waited for), with plain values only."""
    sql = f"SELECT * FROM usage FINAL WHERE key_alias = '{key_alias}' ORDER BY ts"
    rows = eventually_sync(lambda: (r := stack.query(sql)) and len(r) >= calls and r, f"{key_alias}'s usage rows", timeout=30)
    return [{k: v for k, v in row.items() if isinstance(v, (str, int, float, bool)) or v is None} for row in rows]
