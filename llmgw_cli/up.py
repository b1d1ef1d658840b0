"""`llmgw up`: everything on this machine, each component its own process, under one state directory."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llmgw.logs import configure_logging
from llmgw_cli.console import Console
from llmgw_cli.preflight import Plan, UpError, UpSettings, plan
from llmgw_cli.state import AlreadyRunningError, StateDir, StateError
from llmgw_cli.supervisor import Supervisor


def add_up_command(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser(
        "up",
        help="start everything on this machine (nats-server, metering, a worker, the edge)",
        description="Start nats-server, metering, provider workers and the edge as processes of their own,"
        " watched and restarted; Ctrl-C or SIGTERM stops them in order.",
    )
    up.add_argument("--config", default=os.environ.get("LLMGW_CONFIG"), help="the config file (LLMGW_CONFIG)")
    up.add_argument(
        "--state-dir",
        default=os.environ.get("LLMGW_STATE_DIR", ".llmgw"),
        help="where keys, queues, usage, the key secret and the logs live (LLMGW_STATE_DIR; default .llmgw)",
    )
    up.add_argument("--host", default=os.environ.get("LLMGW_HOST", "0.0.0.0"), help="address the edge listens on (LLMGW_HOST)")
    up.add_argument("--port", type=int, default=int(os.environ.get("LLMGW_PORT", "4000")), help="HTTP port (LLMGW_PORT; 4000)")
    up.add_argument("--nats-url", default=os.environ.get("LLMGW_NATS_URL"), help="use this NATS instead of starting one")
    up.add_argument(
        "--nats-port",
        type=int,
        default=None,
        help="port of the embedded nats-server (default 4222, or a free one if it is taken)",
    )
    up.add_argument(
        "--clickhouse-url",
        default=os.environ.get("LLMGW_CLICKHOUSE_URL"),
        help="ClickHouse to write usage to (http://user:pass@host:8123/db); default: chdb in the state dir",
    )
    up.add_argument("--workers", type=int, default=1, help="provider worker processes (1)")
    up.add_argument(
        "--log-format",
        choices=("human", "json"),
        default="human",
        help="human: a start-up report here, the components' JSON logs in <state>/logs/; json: every log line here",
    )
    up.set_defaults(func=run_up_command)


def run_up_command(args: argparse.Namespace) -> int:
    if args.workers < 1:
        print("llmgw up: --workers must be at least 1", file=sys.stderr)
        return 2
    settings = UpSettings(
        state_dir=Path(args.state_dir),
        config=args.config,
        host=args.host,
        port=args.port,
        nats_url=args.nats_url,
        nats_port=args.nats_port,
        clickhouse_url=args.clickhouse_url,
        workers=args.workers,
        log_format=args.log_format,
    )
    return run_up(settings)


def run_up(settings: UpSettings) -> int:
    state = StateDir(settings.state_dir)
    try:
        lock = state.lock()
    except AlreadyRunningError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except StateError as exc:
        print(f"llmgw up: {exc}", file=sys.stderr)
        return 1
    with lock:
        try:
            the_plan = plan(settings, state)
            state.prepare()
        except (UpError, StateError) as exc:
            print(f"llmgw up: {' '.join(str(exc).split())}", file=sys.stderr)  # (one line, whatever the message)
            return 1
        json_logs = settings.log_format == "json"
        level = os.environ.get("LLMGW_LOG_LEVEL", "info")
        if json_logs:
            configure_logging("supervisor", level)
            return _supervise(the_plan, state, settings, json_logs)
        with open(state.log_path("supervisor"), "ab") as supervisor_log:
            configure_logging("supervisor", level, file=supervisor_log)
            return _supervise(the_plan, state, settings, json_logs)


def _supervise(the_plan: Plan, state: StateDir, settings: UpSettings, json_logs: bool) -> int:
    console = Console(state.root, state.logs_dir, json_logs)
    console.starting()
    return Supervisor(the_plan, state.logs_dir, console, json_logs, settings.stop_timeout).run()
