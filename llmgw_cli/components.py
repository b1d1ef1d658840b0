"""One component on its own (`llmgw edge|worker|metering`), `llmgw migrate`, and `llmgw healthcheck`:
what compose.yaml runs in each container."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llmgw.liveness import HEARTBEAT_MAX_AGE, heartbeat_age, heartbeat_path

COMPONENTS = (
    ("edge", "the HTTP edge only (exit code 2: a setting to fix)"),
    ("worker", "one provider worker (exit code 2: a setting to fix)"),
    ("metering", "the metering consumer and query service (exit code 2: a setting to fix)"),
)


def add_component_commands(sub: argparse._SubParsersAction) -> None:
    for name, text in COMPONENTS:
        p = sub.add_parser(name, help=f"run {text}", description=f"Run {text}; settings come from the environment.")
        p.add_argument("--config", default=None, help="the config file (LLMGW_CONFIG)")
        p.set_defaults(func=run_component, component=name)

    migrate = sub.add_parser(
        "migrate",
        help="apply ClickHouse migrations (LLMGW_CLICKHOUSE_URL) and exit",
        description="Apply the usage store's migrations to LLMGW_CLICKHOUSE_URL and exit (compose.yaml's migration step).",
    )
    migrate.set_defaults(func=run_migrate)

    health = sub.add_parser(
        "healthcheck",
        help="exit 0 if a worker or metering on this host is alive (its heartbeat file is fresh)",
        description="A container healthcheck for the processes with no HTTP port: the age of the heartbeat"
        " file the process keeps (LLMGW_HEARTBEAT_FILE, default in the temporary directory).",
    )
    health.add_argument("component", choices=("worker", "metering"), help="which process")
    health.add_argument("--file", default=None, help="the heartbeat file (default: LLMGW_HEARTBEAT_FILE, or the component's)")
    health.add_argument(
        "--max-age", type=float, default=HEARTBEAT_MAX_AGE, help=f"seconds a heartbeat stays fresh ({HEARTBEAT_MAX_AGE:g})"
    )
    health.set_defaults(func=run_healthcheck)


def run_component(args: argparse.Namespace) -> int:
    if args.config:
        os.environ["LLMGW_CONFIG"] = args.config
    if args.component == "edge":
        from gateway.__main__ import main
    elif args.component == "worker":
        from workers.__main__ import main
    else:
        from metering.__main__ import main
    main()
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    from llmgw.config import ConfigError
    from llmgw.logs import configure_logging
    from metering.settings import metering_settings_from_env
    from metering.store import UsageStore

    try:
        settings = metering_settings_from_env(os.environ)
    except ConfigError as exc:
        print(f"llmgw migrate: {exc}", file=sys.stderr)
        return 2
    configure_logging("migrate", settings.log_level)
    store = UsageStore.open(settings.clickhouse_url, settings.engine_options)
    try:
        applied = store.migrate(settings.usage_ttl_days, settings.clickhouse_cluster)
    finally:
        store.close()
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def run_healthcheck(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else heartbeat_path(args.component)
    age = heartbeat_age(path)
    if age is None:
        print(f"llmgw healthcheck: no {args.component} heartbeat at {path} (is it running?)", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"llmgw healthcheck: the {args.component} heartbeat is {age:.0f} s old (over {args.max_age:g} s)", file=sys.stderr)
        return 1
    print(f"{args.component} alive: heartbeat {age:.1f} s old")
    return 0
