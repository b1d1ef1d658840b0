"""The worker process's settings, parsed once in `__main__`."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from typing import Literal

import msgspec

from llmgw.config import ConfigError, GatewayConfig, load_config
from llmgw.metrics import metrics_port_from_env
from llmgw.secrets import server_secret
from llmgw.settings import BusSettings, bus_settings_from_env, env_bool, env_float, env_int, env_str
from llmgw.tracing import tracing_wanted


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    bus: BusSettings
    config: GatewayConfig
    secret: bytes  # LLMGW_SECRET_KEY (key hashing, credential encryption)
    worker_id: str
    concurrency: int = 256  # upstream calls in flight at once
    ack_wait: float = 30.0  # JetStream redelivers a request not acked (or touched) within this
    upstream_connections: int = 512
    connect_timeout: float = 10.0
    default_timeout: float = 600.0  # per upstream call, unless the deployment says otherwise
    stream_timeout: float = 120.0  # a stream with no chunk for this long is ended (deployment: stream_timeout)
    coalesce_interval: float = 0.02  # stream chunks are sent at most this often after the first
    coalesce_max: int = 16  # ... or when this many are waiting
    heartbeat_interval: float = 2.0
    # Batch requests in flight on this worker at most while any edge has interactive traffic
    # (workers/puller.py BatchPuller; with none, batch work uses all free capacity).
    batch_yield_lines: int = 1
    usage_retention_days: int = 30
    # A streaming client went away: stop the upstream call ("cancel": the usage row estimates the
    # tokens sent) or read the stream to its end ("finish": the provider's exact count is metered).
    on_client_disconnect: Literal["cancel", "finish"] = "cancel"
    log_level: str = "info"
    # /metrics (Prometheus) on this port of `metrics_host`; None: not served, 0: a free port
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_team_label: bool = False  # tokens and spend by team as well
    tracing: bool = False  # OpenTelemetry traces (llmgw/tracing.py)


ON_CLIENT_DISCONNECT = ("cancel", "finish")


def on_client_disconnect_from_env(env: Mapping[str, str]) -> Literal["cancel", "finish"]:
    value = env_str(env, "LLMGW_ON_CLIENT_DISCONNECT", "cancel").strip().lower()
    if value not in ON_CLIENT_DISCONNECT:
        raise ConfigError(f"LLMGW_ON_CLIENT_DISCONNECT: expected one of {', '.join(ON_CLIENT_DISCONNECT)}, got {value!r}")
    return value  # type: ignore[return-value]


def worker_settings_from_env(env: Mapping[str, str] | None = None) -> WorkerSettings:
    env = os.environ if env is None else env
    config = load_config(env.get("LLMGW_CONFIG"), env)
    return WorkerSettings(
        bus=bus_settings_from_env(env),
        config=config,
        secret=server_secret(env, config.master_key),
        worker_id=env.get("LLMGW_WORKER_ID") or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}",
        concurrency=env_int(env, "LLMGW_WORKER_CONCURRENCY", 256),
        ack_wait=env_float(env, "LLMGW_ACK_WAIT", 30.0),
        upstream_connections=env_int(env, "LLMGW_UPSTREAM_CONNECTIONS", 512),
        default_timeout=env_float(env, "LLMGW_UPSTREAM_TIMEOUT", 600.0),
        stream_timeout=env_float(env, "LLMGW_STREAM_STALL_TIMEOUT", 120.0),
        coalesce_interval=env_float(env, "LLMGW_COALESCE_MS", 20.0) / 1000.0,
        coalesce_max=env_int(env, "LLMGW_COALESCE_MAX", 16),
        usage_retention_days=env_int(env, "LLMGW_USAGE_RETENTION_DAYS", 30),
        batch_yield_lines=max(env_int(env, "LLMGW_BATCH_YIELD_LINES", 1), 1),
        on_client_disconnect=on_client_disconnect_from_env(env),
        log_level=env_str(env, "LLMGW_LOG_LEVEL", "info"),
        metrics_port=metrics_port_from_env(env, "LLMGW_WORKER_METRICS_PORT") if env_bool(env, "LLMGW_METRICS", True) else None,
        metrics_host=env_str(env, "LLMGW_METRICS_HOST", "127.0.0.1"),
        metrics_team_label=env_str(env, "LLMGW_METRICS_TEAM_LABEL", "false").strip().lower() in ("1", "true", "yes", "on"),
        tracing=tracing_wanted(env, config.litellm_settings),
    )
