"""The embedded ClickHouse engine (chdb) sized for the machine metering runs on.

chdb starts its engine with ClickHouse's defaults, made for a server that owns the machine:
caches of gigabytes, thread pools of hundreds, a memory limit of 90% of the RAM, and a memory
worker that wakes ten times a second. Inside one gateway process beside nats-server, the edge
and the workers, the engine gets pools of the machine's usable cores, caches within a small
budget, a memory limit of a part of the RAM, and a memory worker that wakes once a second.

The options are server settings, passed as query parameters of the chdb connection string (chdb
hands them to the engine as its start-up arguments); `max_threads` is a session setting of each
connection. A ClickHouse server is configured by its operator: nothing here applies to it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import parse_qsl

import msgspec

from llmgw.config import ConfigError
from llmgw.settings import env_int, env_str

MIB = 1024 * 1024
MIN_CACHE_MIB = 16
MIN_MEMORY_MIB = 256
MEMORY_WORKER_PERIOD_MS = 1000  # how often the engine compares its memory tracker with the RSS

# Shares of the cache budget. The uncompressed, page, and query caches stay off, as in
# ClickHouse's defaults: metering's queries read little and seldom twice.
CACHE_SHARES = {
    "mark_cache_size": 0.45,
    "primary_index_cache_size": 0.25,
    "index_mark_cache_size": 0.10,
    "query_condition_cache_size": 0.10,
    "compiled_expression_cache_size": 0.10,
}
CACHES_OFF = ("uncompressed_cache_size", "index_uncompressed_cache_size", "page_cache_max_size", "query_cache.max_size_in_bytes")

# Pools that do I/O (reads, writes, loading parts) get two threads per core; the rest one.
IO_POOLS = (
    "threadpool_local_fs_reader_pool_size",
    "threadpool_writer_pool_size",
    "prefetch_threadpool_pool_size",
    "load_marks_threadpool_pool_size",
)
CPU_POOLS = ("background_pool_size", "background_schedule_pool_size", "async_insert_threads")


class EngineSizing(msgspec.Struct, frozen=True, kw_only=True):
    cores: int  # the cores the engine may keep busy
    cache_mib: int  # the caches' budget, all of them together
    memory_mib: int  # the engine's memory limit (a query that would pass it fails)
    extra: dict[str, str] = {}  # any engine option, as given in LLMGW_CHDB_OPTIONS, last word

    def __post_init__(self) -> None:
        if self.cores < 1:
            raise ConfigError(f"LLMGW_CHDB_CORES: must be at least 1, got {self.cores}")
        if self.cache_mib < MIN_CACHE_MIB:
            raise ConfigError(f"LLMGW_CHDB_CACHE_MB: must be at least {MIN_CACHE_MIB}, got {self.cache_mib}")
        if self.memory_mib < MIN_MEMORY_MIB:
            raise ConfigError(f"LLMGW_CHDB_MAX_MEMORY_MB: must be at least {MIN_MEMORY_MIB}, got {self.memory_mib}")

    def options(self) -> dict[str, str]:
        """The connection-string parameters that start the engine with this sizing."""
        n = self.cores
        options: dict[str, int] = {
            "max_threads": n,
            "max_thread_pool_size": max(256, 64 * n),
            "max_thread_pool_free_size": n,
            "background_common_pool_size": min(n, 4),
            "background_move_pool_size": 1,
            "background_fetches_pool_size": 1,
            "max_server_memory_usage": self.memory_mib * MIB,
            "merges_mutations_memory_usage_soft_limit": self.memory_mib * MIB // 2,
            "memory_worker_period_ms": MEMORY_WORKER_PERIOD_MS,
        }
        options |= {pool: max(2, n) for pool in CPU_POOLS}
        options |= {pool: 2 * n for pool in IO_POOLS}
        options |= {cache: int(self.cache_mib * MIB * share) for cache, share in CACHE_SHARES.items()}
        options |= dict.fromkeys(CACHES_OFF, 0)
        return {name: str(value) for name, value in options.items()} | self.extra


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not all the machine has."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def physical_memory_mib() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // MIB
    except (ValueError, OSError):
        return 4096


def parse_options(raw: str) -> dict[str, str]:
    """`name=value&name=value` (a connection string's query) -> {name: value}."""
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True) if raw.strip() else []
    except ValueError:
        raise ConfigError(f"LLMGW_CHDB_OPTIONS: expected name=value&name=value, got {raw!r}") from None
    return dict(pairs)


def engine_sizing_from_env(env: Mapping[str, str]) -> EngineSizing:
    cores = usable_cores()
    ram = physical_memory_mib()
    return EngineSizing(
        cores=env_int(env, "LLMGW_CHDB_CORES", cores),
        cache_mib=env_int(env, "LLMGW_CHDB_CACHE_MB", min(max(ram // 256, 32), 256)),
        memory_mib=env_int(env, "LLMGW_CHDB_MAX_MEMORY_MB", max(ram // 4, MIN_MEMORY_MIB)),
        extra=parse_options(env_str(env, "LLMGW_CHDB_OPTIONS", "")),
    )
