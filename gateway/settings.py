"""The edge process's settings, parsed once in `__main__`."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from llmgw.config import GatewayConfig, load_config
from llmgw.secrets import server_secret
from llmgw.settings import BusSettings, bus_settings_from_env, env_float, env_int, env_str


class EdgeSettings(msgspec.Struct, frozen=True, kw_only=True):
    bus: BusSettings
    config: GatewayConfig
    secret: bytes  # LLMGW_SECRET_KEY (key hashing, credential encryption)
    host: str = "0.0.0.0"
    port: int = 4000
    http_workers: int = 1  # Granian worker processes, each an edge of its own on the bus
    request_timeout: float = 600.0  # seconds a client waits for an answer (queueing included)
    publish_timeout: float = 5.0  # seconds to get a request into JetStream
    max_body_bytes: int = 10 * 1024 * 1024
    worker_seen_within: float = 10.0  # a worker heartbeat at most this old counts for readiness
    log_level: str = "info"


def edge_settings_from_env(env: Mapping[str, str] | None = None) -> EdgeSettings:
    env = os.environ if env is None else env
    config = load_config(env.get("LLMGW_CONFIG"), env)
    return EdgeSettings(
        bus=bus_settings_from_env(env),
        config=config,
        secret=server_secret(env, config.master_key),
        host=env_str(env, "LLMGW_HOST", "0.0.0.0"),
        port=env_int(env, "LLMGW_PORT", 4000),
        http_workers=env_int(env, "LLMGW_HTTP_WORKERS", 1),
        request_timeout=env_float(env, "LLMGW_REQUEST_TIMEOUT", 600.0),
        max_body_bytes=env_int(env, "LLMGW_MAX_BODY_BYTES", 10 * 1024 * 1024),
        log_level=env_str(env, "LLMGW_LOG_LEVEL", "info"),
    )
