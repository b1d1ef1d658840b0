"""Starting and stopping the real processes tests run against (nats-server, llmgw components)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx

from tests.waiting import eventually_sync

REPO = Path(__file__).resolve().parent.parent


def log_events(output: str, event: str | None = None, **fields) -> list[dict]:
    """The JSON log lines in a process's output (other lines skipped), optionally only those of
    `event` whose fields equal `fields`."""
    found = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if event is not None and record.get("event") != event:
            continue
        if all(record.get(k) == v for k, v in fields.items()):
            found.append(record)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def nats_server_binary() -> str:
    path = Path(sysconfig.get_path("scripts")) / "nats-server"
    return str(path)


class Proc:
    """A child process whose output goes to a log file the test can read."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> Proc:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
            )
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL to its whole process group (it runs in a session of its own): the process and
        its children (an edge's Granian workers) get no chance to clean up, as in a crash."""
        if self.popen is not None and self.running:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(10)

    def pause(self) -> None:
        """SIGSTOP to its whole process group: alive, holding its connections, doing nothing (a
        stalled process) until `resume`."""
        if self.popen is not None and self.running:
            os.killpg(self.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.popen is not None and self.running:
            os.killpg(self.popen.pid, signal.SIGCONT)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


class NatsServer:
    def __init__(self, store_dir: Path, log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.store_dir = store_dir
        self.proc = Proc(
            f"nats-{self.port}",
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store_dir)],
            dict(os.environ),
            log_dir,
        )

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.proc.start()
        eventually_sync(lambda: port_open(self.port), "nats-server to listen", timeout=10)
        return self

    def stop(self) -> None:
        self.proc.stop()


def component(name: str, module: str, env: dict[str, str], log_dir: Path) -> Proc:
    """An llmgw component (`gateway`, `workers`, `metering`) as its own process."""
    return Proc(name, [sys.executable, "-m", module], env, log_dir)


def wait_ready(base_url: str, timeout: float = 30) -> None:
    eventually_sync(
        lambda: httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200, f"{base_url} ready", timeout=timeout
    )


class FakeUpstream:
    """A fake provider upstream as its own process: bench/fake_openai.py (the OpenAI wire format)
    by default, or another `bench.fake_<provider>` module with the same CLI (`--host --port
    --api-key`, prints `READY <port>`)."""

    def __init__(self, log_dir: Path, api_key: str, module: str = "bench.fake_openai") -> None:
        self.api_key = api_key
        self.proc = Proc(
            module.rsplit(".", 1)[-1].replace("_", "-"),
            [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0", "--api-key", api_key],
            dict(os.environ),
            log_dir,
        )
        self.port = 0

    def start(self) -> FakeUpstream:
        self.proc.start()
        line = eventually_sync(
            lambda: next((ln for ln in self.proc.output().splitlines() if ln.startswith("READY ")), ""),
            "the fake upstream to listen",
            timeout=15,
        )
        self.port = int(line.split()[1])
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.port}/_fake/stats", timeout=5).json()

    def stop(self) -> None:
        self.proc.stop()
