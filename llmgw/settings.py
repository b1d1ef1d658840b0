"""Settings shared by every process, and the helpers each process uses to read its own."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from llmgw.config import ConfigError

MAX_REPLICAS = 5  # JetStream's own bound on a stream's replicas


class BusSettings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"  # one URL, or a cluster's, comma-separated
    prefix: str = "llmgw"  # subject / stream namespace
    connect_timeout: float = 5.0
    replicas: int = 1  # of every stream, KV bucket and object store llmgw creates

    @property
    def servers(self) -> list[str]:
        """The NATS servers to connect to (a client fails over between them)."""
        return nats_servers(self.nats_url)


def nats_servers(urls: str) -> list[str]:
    """`nats://a:4222,nats://b:4222` -> the URLs, in order (blanks dropped)."""
    return [url.strip() for url in urls.split(",") if url.strip()]


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name) or default


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None


def bus_settings_from_env(env: Mapping[str, str] | None = None) -> BusSettings:
    env = os.environ if env is None else env
    nats_url = env_str(env, "LLMGW_NATS_URL", "nats://127.0.0.1:4222")
    if not nats_servers(nats_url):
        raise ConfigError(f"LLMGW_NATS_URL: expected one or more comma-separated URLs, got {nats_url!r}")
    replicas = env_int(env, "LLMGW_NATS_REPLICAS", 1)
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ConfigError(f"LLMGW_NATS_REPLICAS: expected 1 to {MAX_REPLICAS}, got {replicas}")
    return BusSettings(nats_url=nats_url, prefix=env_str(env, "LLMGW_BUS_PREFIX", "llmgw"), replicas=replicas)
