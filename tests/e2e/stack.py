"""The whole gateway as production runs it, for the e2e modules: edge, worker(s) and metering as
separate processes on a real nats-server, with ClickHouse in metering (chdb), in front of a fake
OpenAI upstream; the config they run with and the keys of the master and of the upstream."""

from __future__ import annotations

import os
from pathlib import Path

import openai

from tests.procs import FakeUpstream, Proc, component, free_port, wait_ready
from tests.usage_query import query, usage_rows

MASTER_KEY = "sk-e2e-master-1234"
UPSTREAM_KEY = "sk-upstream-e2e-secret-000111"


def write_config(path: Path, upstream_base: str) -> Path:
    groups = {
        "gpt-4": "gpt-4o",
        "gpt-3.5-turbo": "gpt-3.5-turbo",
        "slow": "fake-slow-400",
        "chunky": "fake-chunk-delay-60",
        "hang": "fake-hang",
        "stream-fail": "fake-stream-fail",
        **{f"err-{s}": f"fake-error-{s}" for s in (400, 401, 404, 429, 500, 503)},
    }
    lines = ["model_list:"]
    for name, upstream in groups.items():
        lines += [
            f"  - model_name: {name}",
            "    params:",
            f"      model: openai/{upstream}",
            f"      api_base: {upstream_base}",
            "      api_key: os.environ/E2E_UPSTREAM_KEY",
        ]
        if name == "chunky":  # priced like gpt-4o, which the fake's model names are not
            lines += ["      input_cost_per_token: 2.5e-06", "      output_cost_per_token: 1.0e-05"]
    lines += [
        "  - model_name: rotating",  # its credential is wrong until an admin sets it at run time
        "    params:",
        "      model: openai/gpt-4o",
        f"      api_base: {upstream_base}",
        "      api_key: sk-stale-upstream-key-0000",
        "  - model_name: unreachable",
        "    params:",
        "      model: openai/gpt-4o",
        f"      api_base: http://127.0.0.1:{free_port()}/v1",
        "      api_key: os.environ/E2E_UPSTREAM_KEY",
        "general_settings:",
        "  master_key: os.environ/E2E_MASTER_KEY",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class Stack:
    def __init__(
        self,
        root: Path,
        nats_url: str,
        prefix: str,
        upstream: FakeUpstream,
        extra_env: dict[str, str],
        config: str | None = None,
    ) -> None:
        """`config`: the YAML config to run with (default: `write_config`'s model groups on `upstream`)."""
        self.root = root
        if config is not None:
            (root / "config.yaml").write_text(config)
        self.nats_url = nats_url
        self.prefix = prefix
        self.upstream = upstream
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LLMGW_CONFIG": str(
                root / "config.yaml" if config is not None else write_config(root / "config.yaml", upstream.base_url)
            ),
            "LLMGW_NATS_URL": nats_url,
            "LLMGW_BUS_PREFIX": prefix,
            "LLMGW_CLICKHOUSE_URL": f"chdb:///{root / 'clickhouse'}",
            "LLMGW_PORT": str(self.port),
            "LLMGW_HOST": "127.0.0.1",
            "LLMGW_REQUEST_TIMEOUT": "30",
            "LLMGW_METERING_FLUSH_INTERVAL": "0.2",
            "E2E_UPSTREAM_KEY": upstream.api_key,
            "E2E_MASTER_KEY": MASTER_KEY,
            **extra_env,
        }
        self.procs: list[Proc] = []
        self.workers: list[Proc] = []

    def start(self) -> Stack:
        self.metering = self._start("metering", "metering")
        self.start_worker()
        self.edge = self._start("edge", "gateway")
        wait_ready(self.base_url, 45)
        return self

    def _start(self, name: str, module: str, env: dict[str, str] | None = None) -> Proc:
        proc = component(name, module, {**self.env, **(env or {})}, self.root).start()
        self.procs.append(proc)
        return proc

    def start_worker(self, **env: str) -> Proc:
        worker = self._start(f"worker-{len(self.workers)}", "workers", env)
        self.workers.append(worker)
        return worker

    def client(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=MASTER_KEY, max_retries=0, **kwargs)

    def usage_rows(self, request_ids: list[str], timeout: float = 20) -> dict[str, dict]:
        return usage_rows(self.nats_url, self.prefix, request_ids, timeout)

    def query(self, sql: str, parameters: dict | None = None) -> list[dict]:
        return query(self.nats_url, self.prefix, sql, parameters)

    def logs(self) -> str:
        return "\n".join(p.output() for p in self.procs)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
