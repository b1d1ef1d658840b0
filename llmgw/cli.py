"""The `llmgw` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _up(args: argparse.Namespace) -> int:
    from llmgw.logs import configure_logging
    from llmgw.supervisor import UpSettings, run_up

    configure_logging("supervisor", os.environ.get("LLMGW_LOG_LEVEL", "info"))
    settings = UpSettings(
        state_dir=Path(args.state_dir),
        config=args.config,
        host=args.host,
        port=args.port,
        nats_url=args.nats_url,
        nats_port=args.nats_port,
        clickhouse_url=args.clickhouse_url,
        workers=args.workers,
    )
    return run_up(settings)


def _component(module: str):
    def run(args: argparse.Namespace) -> int:
        if getattr(args, "config", None):
            os.environ["LLMGW_CONFIG"] = args.config
        if module == "gateway":
            from gateway.__main__ import main
        elif module == "workers":
            from workers.__main__ import main
        else:
            from metering.__main__ import main
        main()
        return 0

    return run


def _migrate(args: argparse.Namespace) -> int:
    """Apply ClickHouse migrations and exit (compose.yaml's migration step)."""
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
    store = UsageStore.open(settings.clickhouse_url)
    try:
        applied = store.migrate(settings.usage_ttl_days)
    finally:
        store.close()
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmgw", description="An LLM gateway over NATS JetStream.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start everything on this machine (nats-server, edge, worker, metering)")
    up.add_argument("--config", default=os.environ.get("LLMGW_CONFIG"), help="config file (LLMGW_CONFIG)")
    up.add_argument("--state-dir", default=os.environ.get("LLMGW_STATE_DIR", ".llmgw"))
    up.add_argument("--host", default=os.environ.get("LLMGW_HOST", "0.0.0.0"))
    up.add_argument("--port", type=int, default=int(os.environ.get("LLMGW_PORT", "4000")))
    up.add_argument("--nats-url", default=os.environ.get("LLMGW_NATS_URL"), help="use this NATS instead of starting one")
    up.add_argument("--nats-port", type=int, default=4222, help="port of the embedded nats-server")
    up.add_argument(
        "--clickhouse-url",
        default=os.environ.get("LLMGW_CLICKHOUSE_URL"),
        help="ClickHouse to write usage to (http://user:pass@host:8123/db); default: chdb in the state dir",
    )
    up.add_argument("--workers", type=int, default=1, help="provider worker processes")
    up.set_defaults(func=_up)

    from llmgw.admin_cli import add_admin_commands
    from llmgw.usage_cli import add_usage_commands

    add_admin_commands(sub)
    add_usage_commands(sub)

    migrate = sub.add_parser("migrate", help="apply ClickHouse migrations (LLMGW_CLICKHOUSE_URL) and exit")
    migrate.set_defaults(func=_migrate)

    for name, module, text in (
        ("edge", "gateway", "run the HTTP edge only"),
        ("worker", "workers", "run one provider worker"),
        ("metering", "metering", "run the metering consumer"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", default=None)
        p.set_defaults(func=_component(module))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
