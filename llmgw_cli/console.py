"""What `llmgw up` tells the person who started it: a short start-up report once the edge is
ready, a line per event that needs them, nothing else (the components' logs go to files).

With `--log-format json` the same events are JSON log lines on the console instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import structlog

from llmgw.config import GatewayConfig
from llmgw_cli.preflight import Plan

log = structlog.get_logger()


def models_served(config: GatewayConfig) -> str:
    names = list(dict.fromkeys(d.model_name for d in config.deployments))
    if not names:
        return "none: give --config, or set a provider key (OPENAI_API_KEY=...)"
    shown = ["* (any model name)" if n == "*" else n for n in names]
    return ", ".join(shown[:12]) + (f" and {len(shown) - 12} more" if len(shown) > 12 else "")


class Console:
    def __init__(self, state_root: Path, logs_dir: Path, json_logs: bool) -> None:
        self.state_root = state_root
        self.logs_dir = logs_dir
        self.json_logs = json_logs

    def _say(self, text: str) -> None:
        try:
            print(text, file=sys.stderr if text.startswith("llmgw: error") else sys.stdout, flush=True)
        except OSError:
            pass  # (a console gone away must not stop the gateway)

    def starting(self) -> None:
        if not self.json_logs:
            self._say(f"llmgw: starting (state in {self.state_root}) ...")

    def ready(self, plan: Plan) -> None:
        models = models_served(plan.config)
        if self.json_logs:
            log.info(
                "llmgw_ready",
                url=plan.url,
                models=models,
                state_dir=str(self.state_root),
                nats=plan.nats_url,
                metrics=dict(plan.metrics),
            )
            return
        lines = [
            f"llmgw is ready at {plan.url}  (OpenAI-compatible: {plan.url}/v1; health: /health/ready; API: /openapi.json)",
            f"  models  {models}",
            f"  console {plan.url}/ui  (sign in with the master key)",
            f"  state   {self.state_root}  (--state-dir)",
            f"  logs    {self.logs_dir}/<component>.log",
        ]
        lines.append("  metrics " + "; ".join(f"{name} {url}" for name, url in plan.metrics))
        if plan.nats_note:
            lines.append(f"  nats    {plan.nats_url}: {plan.nats_note}")
        lines.append(f"  stop    Ctrl-C, or kill {os.getpid()}")
        self._say("\n".join(lines))

    def slow(self, after: float) -> None:
        if self.json_logs:
            log.warning("llmgw_not_ready_yet", after_s=after)
        else:
            self._say(f"llmgw: not ready after {after:g} s yet; the logs say why: {self.logs_dir}")

    def restarting(self, name: str, code: int, delay: float, log_path: Path) -> None:
        if not self.json_logs:
            self._say(f"llmgw: error: {name} exited with code {code}; restarting it in {delay:g} s (log: {log_path})")

    def failed(self, name: str, code: int | None, line: str, log_path: Path) -> None:
        if self.json_logs:
            return  # (logged as process_failed by the supervisor)
        status = f"exit code {code}" if code is not None else "it did not start listening"
        reason = f": {line}" if line else ""
        self._say(f"llmgw: error: {name} cannot run ({status}){reason}  (log: {log_path})")

    def stopping(self) -> None:
        if not self.json_logs:
            self._say("llmgw: stopping ...")

    def stopped(self, code: int) -> None:
        if self.json_logs:
            log.info("llmgw_stopped", code=code)
        else:
            self._say("llmgw: stopped" if code == 0 else "llmgw: stopped, after the error above")
