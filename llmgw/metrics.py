"""Prometheus metrics shared by every process: buckets, label helpers, the `/metrics` server.

Every metric is named `llmgw_*` and labelled only with bounded values (routes, model groups,
providers, deployments, status classes, reasons): never a key, a user or a request id. A
family's labelled children are created once and kept (`Children`), so the request path pays a
dict lookup and an increment, nothing more.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, MutableMapping
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Latencies of LLM calls: from a cached answer (milliseconds) to a long generation (minutes).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# ClickHouse inserts: milliseconds to tens of seconds.
INSERT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def status_class(status: int) -> str:
    """`2xx`, `4xx`, `5xx`, ... of an HTTP status."""
    return f"{status // 100}xx"


class Children:
    """The labelled children of one metric family, made on first use and kept."""

    __slots__ = ("_children", "_family")

    def __init__(self, family: Any) -> None:
        self._family = family
        self._children: dict[tuple[str, ...], Any] = {}

    def get(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._family.labels(*labels)
        return child


def serve_metrics(host: str, port: int) -> int:
    """Serve the default registry's `/metrics` on `host:port` (0: a free port) from a daemon
    thread; the port it listens on."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)


def prepare_multiprocess_dir(env: MutableMapping[str, str]) -> str:
    """Before the HTTP workers fork: the run's metrics directory, empty (the operator's
    PROMETHEUS_MULTIPROC_DIR, or a new temporary one)."""
    path = env.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):  # the files of a previous run (only prometheus_client's)
            if name.endswith(".db"):
                os.remove(os.path.join(path, name))
    else:
        path = env[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="llmgw-edge-metrics-")
    return path


def metrics_port_from_env(env: Mapping[str, str], name: str) -> int | None:
    """A process's metrics port setting: unset or empty, not served; 0, a free port."""
    from llmgw.config import ConfigError

    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{name}: expected a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name}: expected a port number (0-65535), got {port}")
    return port
