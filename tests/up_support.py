"""Running `llmgw up` for real, as a person would: the installed command, a state directory of its
own, random ports, its console captured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.procs import free_port
from tests.waiting import eventually_sync

LLMGW = str(Path(sysconfig.get_path("scripts")) / "llmgw")
READY_LINE = "llmgw is ready at "


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any llmgw setting (nor provider key) of the machine running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMGW_", "LITELLM_", "OPENAI_", "ANTHROPIC_"))}
    env.update(extra)
    return env


def gpt4_config(upstream_base: str, master_key: str | None = None) -> str:
    text = (
        "model_list:\n  - model_name: gpt-4\n    litellm_params:\n      model: openai/gpt-4o\n"
        f"      api_base: {upstream_base}\n      api_key: os.environ/UPSTREAM_KEY\n"
    )
    return text + (f"general_settings:\n  master_key: {master_key}\n" if master_key else "")


def with_prelude(prelude: str) -> list[str]:
    """`llmgw` started through a Python prelude (to take away an installed part, for instance)."""
    return [sys.executable, "-c", f"{prelude}\nfrom llmgw_cli.main import main\nmain()"]


def run_up(tmp_path: Path, args: list[str], env: dict[str, str], command: list[str] | None = None) -> subprocess.CompletedProcess:
    """`llmgw up` that is expected to refuse: it must exit by itself, quickly."""
    return subprocess.run(
        [*(command or [LLMGW]), "up", "--state-dir", str(tmp_path / "state"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Up:
    """A running `llmgw up`."""

    def __init__(self, state_dir: Path, config: Path, env: dict[str, str], *extra: str) -> None:
        self.state_dir = state_dir
        self.port, self.nats_port = free_port(), free_port()
        self.console_path = state_dir.parent / f"console-{self.port}.log"
        self.args = [
            LLMGW, "up", "--config", str(config), "--state-dir", str(state_dir), "--host", "127.0.0.1",
            "--port", str(self.port), "--nats-port", str(self.nats_port), *extra,
        ]  # fmt: skip
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    def start(self) -> Up:
        with open(self.console_path, "wb") as console:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=console, stderr=subprocess.STDOUT)
        return self

    def console(self) -> str:
        return self.console_path.read_text(errors="replace") if self.console_path.exists() else ""

    def log(self, component: str) -> str:
        path = self.state_dir / "logs" / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def events(self, event: str) -> list[dict]:
        """The supervisor's log lines of this event (its log file; the console with --log-format json)."""
        lines = (self.console() if "json" in self.args else self.log("supervisor")).splitlines()
        return [r for r in (json.loads(ln) for ln in lines if ln.startswith("{")) if r.get("event") == event]

    def wait_ready(self, timeout: float = 90) -> str:
        """The console once the start-up report is on it (failing early if `up` exits)."""

        def reported() -> str | None:
            assert self.proc is not None and self.proc.poll() is None, f"llmgw up exited:\n{self.console()[-3000:]}"
            text = self.console()
            return text if READY_LINE in text else None

        return eventually_sync(reported, "the start-up report", timeout, retrying=())

    def wait_exit(self, timeout: float = 90) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 90, sig: int = signal.SIGTERM) -> int:
        """SIGTERM (or SIGINT: Ctrl-C) and the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
