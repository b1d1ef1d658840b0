"""`llmgw up`'s processes: started in order, watched, restarted, and stopped together in order.

A child that exits with code 2 says a restart cannot help (a bad setting, a wrong secret): the
supervisor then stops everything and exits non-zero with the child's error line. Any other exit
is restarted with a backoff. SIGINT / SIGTERM stop the children in the reverse of their start
order: the edge first (no new requests), the workers, metering, nats-server last.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httpx
import structlog

from llmgw_cli.console import Console
from llmgw_cli.preflight import ChildSpec, Plan

log = structlog.get_logger()

EXIT_NO_RESTART = 2  # a component's "do not restart me": its error needs a person
MAX_BACKOFF = 5.0  # seconds before a crashed child is started again, at most
PROBE_EVERY = 0.5  # seconds between two readiness probes of the edge
SLOW_START = 60.0  # seconds after which the console says the edge is not ready yet
PR_SET_PDEATHSIG = 1


def _child_setup(nice: int) -> Callable[[], None]:
    """Runs in the child before exec: its priority, and SIGTERM when the supervisor dies (Linux)."""
    parent = os.getpid()
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None

    def setup() -> None:
        if nice:
            os.nice(nice)  # (threads the child starts later, such as chdb's, inherit it)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the supervisor died before the line above
                os._exit(1)

    return setup


class Child:
    def __init__(self, spec: ChildSpec, log_path: Path, console_output: bool) -> None:
        self.spec = spec
        self.log_path = log_path
        self.console_output = console_output  # stdout on the console (JSON log lines), stderr to the log
        self.popen: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.restart_at: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(
                self.spec.args,
                env=self.spec.env,
                stdin=subprocess.DEVNULL,
                stdout=None if self.console_output else out,
                stderr=out,
                start_new_session=True,  # Ctrl-C reaches the supervisor only, which stops the children in order
                preexec_fn=_child_setup(self.spec.nice),
            )
        log.info("process_started", process=self.name, pid=self.popen.pid)

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def terminate(self, timeout: float) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("process_killed", process=self.name, after_s=timeout)
            self.popen.kill()
            self.popen.wait()
        log.info("process_stopped", process=self.name, code=self.popen.returncode)

    def last_line(self) -> str:
        """The last line of its log: a component that exits 2 prints its reason last."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1] if lines else ""


def wait_port(port: int, timeout: float, child: Child) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.exited() is None:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def edge_ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=PROBE_EVERY).status_code == 200
    except httpx.HTTPError:
        return False


class Supervisor:
    def __init__(self, plan: Plan, logs_dir: Path, console: Console, json_logs: bool, stop_timeout: float) -> None:
        self.plan = plan
        self.console = console
        self.stop_timeout = stop_timeout
        self.children = [
            Child(spec, logs_dir / f"{spec.name}.log", console_output=json_logs and spec.name != "nats-server")
            for spec in plan.children
        ]
        self._stopping = False

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            code = self._start_all()
            if code == 0:
                code = self._watch()
        finally:
            self.console.stopping()
            for child in reversed(self.children):  # edge, workers, metering, nats-server
                child.terminate(self.stop_timeout)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.console.stopped(code)
        return code

    def _start_all(self) -> int:
        for child in self.children:
            if self._stopping:
                return 0
            child.start()
            port = self.plan.nats_port
            if child.name == "nats-server" and port is not None and not wait_port(port, 15, child):
                self.console.failed(child.name, child.exited(), child.last_line(), child.log_path)
                return 1
        log.info("llmgw_up", url=self.plan.url, nats=self.plan.nats_url)
        return 0

    def _watch(self) -> int:
        started = time.monotonic()
        ready, told_slow, next_probe = False, False, 0.0
        while not self._stopping:
            now = time.monotonic()
            for child in self.children:
                code = child.exited()
                if code is None:
                    continue
                if child.restart_at is None:
                    if code == EXIT_NO_RESTART:
                        log.error("process_failed", process=child.name, code=code, error=child.last_line())
                        self.console.failed(child.name, code, child.last_line(), child.log_path)
                        return 1
                    child.restarts += 1
                    delay = min(float(child.restarts), MAX_BACKOFF)
                    child.restart_at = now + delay
                    log.error("process_exited", process=child.name, code=code, restart=child.restarts)
                    self.console.restarting(child.name, code, delay, child.log_path)
                elif now >= child.restart_at:
                    child.restart_at = None
                    child.start()
            if not ready and now >= next_probe:
                ready = edge_ready(self.plan.probe_url)
                next_probe = time.monotonic() + PROBE_EVERY
                if ready:
                    self.console.ready(self.plan)
                elif not told_slow and now - started > SLOW_START:
                    told_slow = True
                    self.console.slow(SLOW_START)
            with contextlib.suppress(InterruptedError):
                time.sleep(0.2)
        return 0
