"""The metering process's settings, parsed once in `__main__`."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import msgspec

from llmgw.config import ConfigError, read_config_file
from llmgw.metrics import metrics_port_from_env
from llmgw.settings import BusSettings, bus_settings_from_env, env_bool, env_float, env_int, env_str
from llmgw.tracing import tracing_wanted
from metering.engine_options import engine_sizing_from_env
from metering.on_cluster import valid_cluster_name
from metering.reconcile.settings import ReconcileSettings, reconcile_settings_from_env

CLICKHOUSE_SCHEMES = ("chdb", "http", "https")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class MeteringSettings(msgspec.Struct, frozen=True, kw_only=True):
    bus: BusSettings
    # A clickhouse-connect DSN: `chdb:///abs/path` (embedded, one process per directory),
    # `chdb://memory` (embedded, gone on exit) or `http(s)://user:pass@host:8123/db`.
    clickhouse_url: str
    # A replicated ClickHouse: the cluster (one of its `remote_servers`) the migrations are
    # applied ON, with Replicated engines (metering/on_cluster.py); empty: one server.
    clickhouse_cluster: str = ""
    batch_size: int = 1000  # rows per insert at most
    flush_interval: float = 1.0  # seconds a usage event waits at most before it is inserted
    ack_wait: float = 30.0  # seconds before JetStream gives an unacked event to another consumer
    usage_retention_days: int = 30  # max age of the usage and alerts *streams* (0 = keep forever)
    usage_ttl_days: int = 0  # TTL of the raw `usage` table rows (0 = keep forever)
    log_level: str = "info"
    # /metrics (Prometheus) on this port of `metrics_host`; None: not served, 0: a free port
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    tracing: bool = False  # OpenTelemetry traces (llmgw/tracing.py)
    # The embedded engine's start-up options (metering/engine_options.py); empty for a server.
    engine_options: dict[str, str] = {}
    # Once the embedded engine is up, page out what its start alone touched (metering/resident.py).
    page_out_engine: bool = True
    # The providers' own usage and cost reports read on a schedule (metering/reconcile/); None: off.
    reconcile: ReconcileSettings | None = None

    def __post_init__(self) -> None:
        if urlsplit(self.clickhouse_url).scheme not in CLICKHOUSE_SCHEMES:
            raise ConfigError(
                f"LLMGW_CLICKHOUSE_URL: expected chdb:///path, chdb://memory or http(s)://host:8123/db,"
                f" got {redact_dsn(self.clickhouse_url)!r}"
            )
        if self.clickhouse_cluster and not valid_cluster_name(self.clickhouse_cluster):
            raise ConfigError(f"LLMGW_CLICKHOUSE_CLUSTER: not a cluster name: {self.clickhouse_cluster!r}")
        if self.clickhouse_cluster and urlsplit(self.clickhouse_url).scheme == "chdb":
            raise ConfigError("LLMGW_CLICKHOUSE_CLUSTER: the embedded ClickHouse (chdb://) is one server, not a cluster")
        if self.batch_size < 1:
            raise ConfigError(f"LLMGW_METERING_BATCH_SIZE: must be at least 1, got {self.batch_size}")
        if self.flush_interval <= 0:
            raise ConfigError(f"LLMGW_METERING_FLUSH_INTERVAL: must be above 0, got {self.flush_interval}")
        if self.ack_wait <= 0:
            raise ConfigError(f"LLMGW_METERING_ACK_WAIT: must be above 0, got {self.ack_wait}")
        if self.usage_retention_days < 0:
            raise ConfigError(f"LLMGW_USAGE_RETENTION_DAYS: must be 0 (forever) or more, got {self.usage_retention_days}")
        if self.usage_ttl_days < 0:
            raise ConfigError(f"LLMGW_USAGE_TTL_DAYS: must be 0 (forever) or more, got {self.usage_ttl_days}")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(f"LLMGW_LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")


def default_clickhouse_url(env: Mapping[str, str]) -> str:
    state_dir = os.path.abspath(env_str(env, "LLMGW_STATE_DIR", ".llmgw"))
    return f"chdb://{os.path.join(state_dir, 'clickhouse')}"


def metering_settings_from_env(env: Mapping[str, str] | None = None) -> MeteringSettings:
    env = os.environ if env is None else env
    clickhouse_url = env_str(env, "LLMGW_CLICKHOUSE_URL", default_clickhouse_url(env))
    embedded = urlsplit(clickhouse_url).scheme == "chdb"
    return MeteringSettings(
        bus=bus_settings_from_env(env),
        clickhouse_url=clickhouse_url,
        clickhouse_cluster=env_str(env, "LLMGW_CLICKHOUSE_CLUSTER", "").strip(),
        batch_size=env_int(env, "LLMGW_METERING_BATCH_SIZE", 1000),
        flush_interval=env_float(env, "LLMGW_METERING_FLUSH_INTERVAL", 1.0),
        ack_wait=env_float(env, "LLMGW_METERING_ACK_WAIT", 30.0),
        usage_retention_days=env_int(env, "LLMGW_USAGE_RETENTION_DAYS", 30),
        usage_ttl_days=env_int(env, "LLMGW_USAGE_TTL_DAYS", 0),
        log_level=env_str(env, "LLMGW_LOG_LEVEL", "info"),
        metrics_port=metrics_port_from_env(env, "LLMGW_METERING_METRICS_PORT") if env_bool(env, "LLMGW_METRICS", True) else None,
        metrics_host=env_str(env, "LLMGW_METRICS_HOST", "127.0.0.1"),
        tracing=tracing_wanted(env, read_config_file(env.get("LLMGW_CONFIG")).get("litellm_settings") or {}),
        engine_options=engine_sizing_from_env(env).options() if embedded else {},
        page_out_engine=embedded and env_bool(env, "LLMGW_CHDB_PAGE_OUT", True),
        reconcile=reconcile_settings_from_env(env),
    )


def redact_dsn(dsn: str) -> str:
    """The DSN with its password masked: safe for a log line or an error message."""
    parts = urlsplit(dsn)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return dsn
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def check_store_driver(clickhouse_url: str) -> None:
    """The embedded store (`chdb://...`) needs the chdb module (the `embedded` extra)."""
    if clickhouse_url.startswith("chdb:") and importlib.util.find_spec("chdb") is None:
        raise ConfigError(
            "LLMGW_CLICKHOUSE_URL is an embedded store (chdb://) but chdb is not installed:"
            " pip install 'llmgw[embedded]', or point LLMGW_CLICKHOUSE_URL at a ClickHouse server"
        )
