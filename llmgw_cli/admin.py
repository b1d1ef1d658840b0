"""`llmgw keys|users|teams ...`: the admin API of a running gateway from the command line.

Each command takes only its own flags; a key is named by the key, its alias or its token (the
start of it is enough). Answers print as tables, or as the API's JSON with `--json`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

import msgspec

from llmgw.contracts import USER_ROLES
from llmgw_cli.admin_client import AdminClient
from llmgw_cli.admin_views import VIEWS, done, keys_table, users_table
from llmgw_cli.output import CommandError, json_text, pretty_json


class Flag(msgspec.Struct, frozen=True):
    flag: str
    field: str
    kind: str  # "str", "int", "float", "list" (comma-separated)
    help: str
    choices: tuple[str, ...] | None = None


def _f(flag: str, field: str, kind: str, help: str, choices: tuple[str, ...] | None = None) -> Flag:
    return Flag(flag, field, kind, help, choices)


MODELS = _f("--models", "models", "list", "model names or access groups it may call, comma-separated (default: all)")
MAX_BUDGET = _f("--max-budget", "max_budget", "float", "spend limit in USD")
SOFT_BUDGET = _f("--soft-budget", "soft_budget", "float", "spend in USD past which an alert is sent")
BUDGET_DURATION = _f("--budget-duration", "budget_duration", "str", "the budget's period, e.g. 30d, 1h (it resets after each)")
RPM = _f("--rpm", "rpm_limit", "int", "requests per minute at most")
TPM = _f("--tpm", "tpm_limit", "int", "tokens per minute at most")
DURATION = _f("--duration", "duration", "str", "how long the key is valid, e.g. 30d, 12h (default: no end)")
KEY_ALIAS = _f("--alias", "key_alias", "str", "a name for the key (commands take it in place of the key)")
OWNER_USER = _f("--user", "user_id", "str", "the user the key belongs to")
OWNER_TEAM = _f("--team", "team_id", "str", "the team the key belongs to")
USER_ID = _f("--user-id", "user_id", "str", "the new user's id (default: a random one)")
EMAIL = _f("--email", "user_email", "str", "the user's e-mail address")
ROLE = _f("--role", "user_role", "str", "the user's role", USER_ROLES)
USER_TEAM = _f("--team", "team_id", "str", "a team the user joins")
TEAM_ID = _f("--team-id", "team_id", "str", "the new team's id (default: a random one)")
TEAM_ALIAS = _f("--alias", "team_alias", "str", "a name for the team")
MEMBER = _f("--member", "member", "str", "the user id of the member to add")
MEMBER_ROLE = _f("--role", "role", "str", "the member's role in the team (user)", ("admin", "user"))

KEY_SETTINGS = (MODELS, DURATION, KEY_ALIAS, OWNER_USER, OWNER_TEAM, MAX_BUDGET, SOFT_BUDGET, BUDGET_DURATION, RPM, TPM)
USER_SETTINGS = (EMAIL, ROLE, MODELS, MAX_BUDGET, SOFT_BUDGET, BUDGET_DURATION, RPM, TPM)
TEAM_SETTINGS = (TEAM_ALIAS, MODELS, MAX_BUDGET, SOFT_BUDGET, BUDGET_DURATION, RPM, TPM)


class Command(msgspec.Struct, frozen=True, kw_only=True):
    help: str
    method: str
    path: str
    target: str | None = None  # the field the positional argument goes to
    target_help: str = ""
    many: bool = False  # several positional arguments, sent as a list
    key_target: bool = False  # the positional arguments are keys (aliases resolved)
    flags: tuple[Flag, ...] = ()
    data: bool = True  # --data: more fields as a JSON object
    view: str = ""  # admin_views.VIEWS entry, or "" for a one-line confirmation
    done: str = ""


KEY_REF = "the key: sk-..., its alias, or its token (the start of it is enough)"
GROUPS: dict[str, tuple[str, dict[str, Command]]] = {
    "keys": (
        "virtual keys",
        {
            "create": Command(help="make a key (it is shown once)", method="POST", path="/key/generate", flags=KEY_SETTINGS, view="created_key"),
            "list": Command(help="list keys: aliases, masked keys, spend", method="GET", path="/key/list", data=False,
                            flags=(_f("--user", "user_id", "str", "only this user's keys"), _f("--team", "team_id", "str", "only this team's keys"),
                                   _f("--alias", "key_alias", "str", "only keys with this alias"))),
            "info": Command(help="show a key", method="GET", path="/key/info", target="key", target_help=KEY_REF, key_target=True, data=False, view="key_info"),
            "update": Command(help="change a key's settings", method="POST", path="/key/update", target="key", target_help=KEY_REF,
                              key_target=True, flags=KEY_SETTINGS, view="key_info"),
            "revoke": Command(help="delete keys: they stop working at once, everywhere", method="POST", path="/key/delete", target="keys",
                              target_help=KEY_REF, many=True, key_target=True, data=False, done="revoked"),
            "block": Command(help="refuse a key until it is unblocked", method="POST", path="/key/block", target="key", target_help=KEY_REF,
                             key_target=True, data=False, view="key_info"),
            "unblock": Command(help="let a blocked key work again", method="POST", path="/key/unblock", target="key", target_help=KEY_REF,
                               key_target=True, data=False, view="key_info"),
            "regenerate": Command(help="replace a key by a new one with the same settings (the old one stops working)", method="POST",
                                  path="/key/regenerate", target="key", target_help=KEY_REF, key_target=True, flags=(DURATION,), view="created_key"),
        },
    ),
    "users": (
        "users (each gets a key of their own)",
        {
            "create": Command(help="make a user and their key", method="POST", path="/user/new", flags=(USER_ID, *USER_SETTINGS, USER_TEAM), view="created_user"),
            "list": Command(help="list users", method="GET", path="/user/info", data=False),
            "info": Command(help="show a user and their keys", method="GET", path="/user/info", target="user_id", target_help="the user's id", data=False, view="user_info"),
            "update": Command(help="change a user's settings", method="POST", path="/user/update", target="user_id", target_help="the user's id",
                              flags=USER_SETTINGS, done="updated"),
            "delete": Command(help="delete users and their keys", method="POST", path="/user/delete", target="user_ids",
                              target_help="the users' ids", many=True, data=False, done="deleted"),
        },
    ),
    "teams": (
        "teams",
        {
            "create": Command(help="make a team", method="POST", path="/team/new", flags=(TEAM_ID, *TEAM_SETTINGS), view="team_info"),
            "info": Command(help="show a team and its keys", method="GET", path="/team/info", target="team_id", target_help="the team's id", data=False, view="team_info"),
            "update": Command(help="change a team's settings", method="POST", path="/team/update", target="team_id", target_help="the team's id",
                              flags=TEAM_SETTINGS, done="updated"),
            "delete": Command(help="delete teams and their keys", method="POST", path="/team/delete", target="team_ids",
                              target_help="the teams' ids", many=True, data=False, done="deleted"),
            "add-member": Command(help="add a user to a team", method="POST", path="/team/member_add", target="team_id",
                                  target_help="the team's id", flags=(MEMBER, MEMBER_ROLE), data=False, view="team_info"),
        },
    ),
}  # fmt: skip

_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "list": str}


def add_admin_commands(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("LLMGW_URL", "http://127.0.0.1:4000"), help="the gateway (LLMGW_URL)")
    common.add_argument("--master-key", default=os.environ.get("LLMGW_MASTER_KEY"), help="the master key (LLMGW_MASTER_KEY)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    for group, (what, commands) in GROUPS.items():
        gp = sub.add_parser(group, help=f"manage {what} on a running gateway", description=f"Manage {what} on a running gateway.")
        gsub = gp.add_subparsers(dest="action", required=True, metavar="ACTION")
        for action, command in commands.items():
            p = gsub.add_parser(
                action, parents=[common], help=command.help, description=command.help[0].upper() + command.help[1:] + "."
            )
            if command.target:
                p.add_argument(
                    "target", nargs="+" if command.many else None, metavar=command.target.upper(), help=command.target_help
                )
            for flag in command.flags:
                metavar = None if flag.choices else flag.flag[2:].upper().replace("-", "_")
                p.add_argument(
                    flag.flag, dest=flag.field, type=_TYPES[flag.kind], choices=flag.choices, metavar=metavar, help=flag.help
                )
            if command.data:
                p.add_argument(
                    "--data", metavar="JSON", help='more fields, as a JSON object (e.g. \'{"metadata": {"app": "x"}}\')'
                )
            p.set_defaults(func=run_admin_command, group=group, command=command)


def build_fields(args: argparse.Namespace, command: Command) -> dict[str, Any]:
    """The request's body fields (POST) or query parameters (GET)."""
    fields: dict[str, Any] = {}
    if getattr(args, "data", None):
        try:
            fields = json.loads(args.data)
        except ValueError as exc:
            raise CommandError(f"llmgw: --data is not JSON: {exc}") from None
        if not isinstance(fields, dict):
            raise CommandError("llmgw: --data must be a JSON object")
    for flag in command.flags:
        value = getattr(args, flag.field, None)
        if value is not None:
            fields[flag.field] = [m.strip() for m in value.split(",") if m.strip()] if flag.kind == "list" else value
    if "member" in fields:
        fields["member"] = {"user_id": fields["member"], "role": fields.pop("role", None) or "user"}
    return fields


def run_admin_command(args: argparse.Namespace) -> int:
    command: Command = args.command
    if not args.master_key:
        raise CommandError("llmgw: give the gateway's master key: LLMGW_MASTER_KEY=sk-... (or --master-key)")
    client = AdminClient(args.url, args.master_key)
    fields = build_fields(args, command)
    if command.target:
        targets = args.target if command.many else [args.target]
        if command.key_target:
            targets = [client.resolve_key(t) for t in targets]
        fields[command.target] = targets if command.many else targets[0]
    if args.group == "keys" and args.action == "list":
        return _print(args, {"keys": client.all_keys(**fields)}, keys_table)
    if args.group == "users" and args.action == "list":
        return _print(args, {"users": client.all_users()}, users_table)
    answer = client.call(command.method, command.path, fields)
    if args.json:
        print(pretty_json(answer.raw))
        return 0
    view = VIEWS[command.view] if command.view else done(command.done or "done")
    print(view(answer.body))
    return 0


def _print(args: argparse.Namespace, body: dict[str, Any], table: Callable[[Any], str]) -> int:
    if args.json:
        print(json_text(body, indent=2))
    else:
        print(table(next(iter(body.values()))))
    return 0
