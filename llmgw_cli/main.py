"""The `llmgw` command: `up` (everything on this machine), each component on its own, the admin
API (`keys`, `users`, `teams`), usage (`usage tail`, `sql`, `reconcile`), `migrate` and `healthcheck`."""

from __future__ import annotations

import argparse
import os
import sys

from llmgw_cli.admin import add_admin_commands
from llmgw_cli.components import add_component_commands
from llmgw_cli.output import CommandError
from llmgw_cli.reconcile import add_reconcile_command
from llmgw_cli.up import add_up_command
from llmgw_cli.usage import add_usage_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmgw",
        description="An LLM gateway over NATS JetStream: `llmgw up` starts it on this machine;"
        " `llmgw COMMAND --help` tells what each command takes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_up_command(sub)
    add_admin_commands(sub)
    add_usage_commands(sub)
    add_reconcile_command(sub)
    add_component_commands(sub)
    return parser


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`llmgw keys list | head -1`): no traceback, and nothing more to
        # write; stdout points at /dev/null so that the interpreter's last flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141  # (128 + SIGPIPE, as a shell reports a command a closed pipe ended)
    sys.exit(code)


if __name__ == "__main__":
    main()
