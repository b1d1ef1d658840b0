"""Metering: usage events from the bus into ClickHouse (embedded chdb or a server), exactly once,
and a read-only SQL service over NATS for everything else."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metering.runner import run_metering
    from metering.settings import MeteringSettings, metering_settings_from_env

__all__ = ["MeteringSettings", "main", "metering_settings_from_env", "run_metering"]


def main() -> None:
    from metering.__main__ import main as _main

    _main()


def __getattr__(name: str) -> object:
    # Lazy, so `import metering` stays cheap (the store pulls in clickhouse-connect).
    if name == "run_metering":
        from metering.runner import run_metering

        return run_metering
    if name in ("MeteringSettings", "metering_settings_from_env"):
        from metering import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'metering' has no attribute {name!r}")
