"""`llmgw keys|users|teams ...`: the admin API from the command line (HTTP to a running gateway)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx

# command -> (method, path, how the positional argument is sent)
KEYS = {
    "create": ("POST", "/key/generate", None),
    "list": ("GET", "/key/list", None),
    "info": ("GET", "/key/info", "key"),
    "update": ("POST", "/key/update", "key"),
    "revoke": ("POST", "/key/delete", "keys"),
    "block": ("POST", "/key/block", "key"),
    "unblock": ("POST", "/key/unblock", "key"),
    "regenerate": ("POST", "/key/regenerate", "key"),
}
USERS = {
    "create": ("POST", "/user/new", None),
    "list": ("GET", "/user/info", None),
    "info": ("GET", "/user/info", "user_id"),
    "update": ("POST", "/user/update", "user_id"),
    "delete": ("POST", "/user/delete", "user_ids"),
}
TEAMS = {
    "create": ("POST", "/team/new", None),
    "info": ("GET", "/team/info", "team_id"),
    "update": ("POST", "/team/update", "team_id"),
    "delete": ("POST", "/team/delete", "team_ids"),
    "add-member": ("POST", "/team/member_add", "team_id"),
}
GROUPS = {"keys": KEYS, "users": USERS, "teams": TEAMS}

# Flags every command accepts; they become body fields (POST) or query parameters (GET).
FIELDS = {
    "--models": ("models", "list"),
    "--duration": ("duration", "str"),
    "--alias": ("key_alias", "str"),
    "--user": ("user_id", "str"),
    "--team": ("team_id", "str"),
    "--max-budget": ("max_budget", "float"),
    "--budget-duration": ("budget_duration", "str"),
    "--rpm": ("rpm_limit", "int"),
    "--tpm": ("tpm_limit", "int"),
    "--email": ("user_email", "str"),
    "--role": ("user_role", "str"),
    "--member": ("member", "str"),
}


def add_admin_commands(sub: argparse._SubParsersAction) -> None:
    for group, commands in GROUPS.items():
        gp = sub.add_parser(group, help=f"manage {group} on a running gateway")
        gsub = gp.add_subparsers(dest="action", required=True)
        for action, (_, _, positional) in commands.items():
            p = gsub.add_parser(action)
            if positional:
                p.add_argument("target", nargs="+" if positional.endswith("s") else None)
            for flag, (_, kind) in FIELDS.items():
                p.add_argument(flag, type={"float": float, "int": int}.get(kind, str))
            p.add_argument("--json", help="more fields, as a JSON object")
            p.add_argument("--url", default=os.environ.get("LLMGW_URL", "http://127.0.0.1:4000"))
            p.add_argument("--master-key", default=os.environ.get("LLMGW_MASTER_KEY"))
            p.set_defaults(func=run_admin_command, group=group)


def build_request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    method, path, positional = GROUPS[args.group][args.action]
    fields: dict[str, Any] = json.loads(args.json) if args.json else {}
    for flag, (name, kind) in FIELDS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            fields[name] = [m for m in value.split(",") if m] if kind == "list" else value
    if "member" in fields:
        fields["member"] = {"user_id": fields["member"], "role": fields.pop("user_role", "user")}
    if positional:
        fields[positional] = args.target
    if args.group == "users" and args.action == "list":
        fields.setdefault("view_all", "true")
    return method, path, fields


def run_admin_command(args: argparse.Namespace) -> int:
    if not args.master_key:
        print("llmgw: set LLMGW_MASTER_KEY (or --master-key)", file=sys.stderr)
        return 2
    method, path, fields = build_request(args)
    headers = {"Authorization": f"Bearer {args.master_key}"}
    try:
        if method == "GET":
            resp = httpx.get(args.url + path, params=fields, headers=headers, timeout=30)
        else:
            resp = httpx.post(args.url + path, json=fields, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        print(f"llmgw: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    print(json.dumps(body, indent=2))
    return 0 if resp.status_code < 400 else 1
