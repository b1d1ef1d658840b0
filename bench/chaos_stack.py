"""The processes bench/chaos.py runs and breaks: an embedded stack (nats-server, metering on chdb,
two provider workers, two edges) in front of the fake OpenAI upstream, each its own process that a
fault can SIGKILL, SIGTERM, restart or (the upstream) stop for a while with SIGSTOP."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import sysconfig
import time
from pathlib import Path

import aiohttp

from bench.procs import REPO_ROOT, free_port, wait_ready

MASTER_KEY = "sk-chaos-master-0000"
UPSTREAM_KEY = "sk-chaos-upstream-0000"
REQUEST_TIMEOUT_S = 20.0  # LLMGW_REQUEST_TIMEOUT of the edges (a reservation lives that + 60 s at most)


def config_text(upstream: str) -> str:
    """Chat and messages on `gpt-4` (gpt-4o's prices), embeddings on `embed` (text-embedding-3-small)."""
    lines = ["model_list:"]
    for name, model in (("gpt-4", "gpt-4o"), ("embed", "text-embedding-3-small")):
        lines += [
            f"  - model_name: {name}",
            "    params:",
            f"      model: openai/{model}",
            f"      api_base: {upstream}/v1",
            f"      api_key: {UPSTREAM_KEY}",
        ]
    lines += ["general_settings:", f"  master_key: {MASTER_KEY}"]
    return "\n".join(lines) + "\n"


class Child:
    """One process of the stack, restartable, its output appended to `<name>.log`."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = log_dir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    async def start(self) -> None:
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 - once per start
            self.proc = await asyncio.create_subprocess_exec(
                *self.args, stdout=log, stderr=asyncio.subprocess.STDOUT, env=self.env, cwd=REPO_ROOT, start_new_session=True
            )
        self.starts += 1

    async def signal(self, sig: signal.Signals, wait_s: float = 30.0) -> None:
        """Send `sig` to the process group; wait for it to exit (SIGKILL past `wait_s`)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
            await asyncio.wait_for(self.proc.wait(), wait_s)
        except TimeoutError:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        except ProcessLookupError:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # (an edge's Granian workers, if any were left)
        except ProcessLookupError:
            pass

    def pause(self, paused: bool) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)


class ChaosStack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.nats_port = free_port()
        self.nats_url = f"nats://127.0.0.1:{self.nats_port}"
        self.edge_ports = [free_port(), free_port()]
        self.edges_up = [False, False]  # the load balancer's view: an edge being restarted gets no requests
        nats_bin = str(Path(sysconfig.get_path("scripts")) / "nats-server")
        store = root / "nats"
        self.nats = Child(
            "nats-server",
            [nats_bin, "-a", "127.0.0.1", "-p", str(self.nats_port), "-js", "-sd", str(store)],
            dict(os.environ),
            root,
        )
        self.upstream_port = free_port()
        fake = [
            sys.executable,
            "-m",
            "bench.fake_openai",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.upstream_port),
            "--api-key",
            UPSTREAM_KEY,
        ]
        self.upstream = Child("upstream", fake, dict(os.environ), root)
        (root / "config.yaml").write_text(config_text(f"http://127.0.0.1:{self.upstream_port}"))
        env = {
            **os.environ,
            "LLMGW_CONFIG": str(root / "config.yaml"),
            "LLMGW_NATS_URL": self.nats_url,
            "LLMGW_CLICKHOUSE_URL": f"chdb:///{root / 'clickhouse'}",
            "LLMGW_HOST": "127.0.0.1",
            "LLMGW_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_S),
            "LLMGW_METERING_FLUSH_INTERVAL": "0.5",
            "LLMGW_LOG_LEVEL": "warning",
        }
        self.metering = Child("metering", [sys.executable, "-m", "metering"], env, root)
        self.workers = [Child(f"worker-{i}", [sys.executable, "-m", "workers"], env, root) for i in range(2)]
        self.edges = [
            Child(f"edge-{i}", [sys.executable, "-m", "gateway"], {**env, "LLMGW_PORT": str(port)}, root)
            for i, port in enumerate(self.edge_ports)
        ]

    @property
    def llmgw(self) -> list[Child]:
        return [*self.edges, *self.workers, self.metering]

    def edge_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.edge_ports[index]}"

    async def start(self) -> None:
        await self.nats.start()
        await self.upstream.start()
        await self._listening(self.nats_port)
        await self.metering.start()
        for worker in self.workers:
            await worker.start()
        for i in range(len(self.edges)):
            await self.start_edge(i)

    async def start_edge(self, index: int) -> None:
        await self.edges[index].start()
        if not await wait_ready(f"{self.edge_url(index)}/health/ready", 90):
            raise RuntimeError(f"edge-{index} did not become ready (see {self.edges[index].log_path})")
        self.edges_up[index] = True

    async def restart_nats(self) -> None:
        await self.nats.signal(signal.SIGTERM)
        await self.nats.start()
        await self._listening(self.nats_port)

    async def _listening(self, port: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nothing listens on port {port}") from None
                await asyncio.sleep(0.1)

    async def admin(self, path: str, body: dict) -> dict:
        async with aiohttp.ClientSession() as session:
            url = self.edge_url(0) + path
            async with session.post(url, json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"{path}: {resp.status} {await resp.text()}")
                return await resp.json()

    async def stop(self) -> None:
        self.upstream.pause(False)
        for child in [*self.edges, *self.workers, self.metering, self.upstream, self.nats]:
            await child.signal(signal.SIGTERM, 20)
