"""Admin answers as people read them: keys, users and teams as tables and field lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmgw.money import money_text
from llmgw_cli.output import Amount, format_fields, format_table


def _text(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def money(value: Any) -> Amount:
    return Amount(money_text(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-")


def models(value: Any) -> str:
    return _text(value) if value else "all"


def limits(record: dict[str, Any]) -> str:
    parts = [f"{record[k]} {unit}" for k, unit in (("rpm_limit", "rpm"), ("tpm_limit", "tpm")) if record.get(k) is not None]
    if record.get("max_parallel_requests") is not None:
        parts.append(f"{record['max_parallel_requests']} parallel")
    return ", ".join(parts) or "-"


def budget(record: dict[str, Any]) -> str:
    if record.get("max_budget") is None:
        return "-"
    period = f" per {record['budget_duration']}" if record.get("budget_duration") else ""
    return f"{money(record['max_budget'])}{period}"


def key_fields(key: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("key", _text(key.get("key_name"))),
        ("alias", _text(key.get("key_alias"))),
        ("token", _text(key.get("token"))),
        ("user", _text(key.get("user_id"))),
        ("team", _text(key.get("team_id"))),
        ("models", models(key.get("models"))),
        ("spend", money(key.get("spend")) if "spend" in key else "-"),
        ("budget", budget(key)),
        ("soft budget", money(key.get("soft_budget")) if key.get("soft_budget") is not None else "-"),
        ("budget resets", _text(key.get("budget_reset_at"))),
        ("limits", limits(key)),
        ("expires", _text(key.get("expires")) if key.get("expires") else "never"),
        ("blocked", _text(bool(key.get("blocked")))),
        ("priority", _text(key.get("priority"))),
    ]


def keys_table(keys: list[dict[str, Any]]) -> str:
    rows = [
        [
            _text(k.get("key_alias")),
            _text(k.get("key_name")),
            (k.get("token") or "")[:12],
            _text(k.get("user_id")),
            _text(k.get("team_id")),
            models(k.get("models")),
            money(k.get("spend")),
            budget(k),
            _text(k.get("expires")) if k.get("expires") else "never",
            "blocked" if k.get("blocked") else "",
        ]
        for k in keys
    ]
    columns = ["alias", "key", "token", "user", "team", "models", "spend", "budget", "expires", ""]
    return format_table(columns, rows)


def created_key(body: dict[str, Any]) -> str:
    """The new key first (it is shown this once), then what it may do."""
    fields = [("key", str(body.get("key")))] + [f for f in key_fields(body) if f[0] not in ("key", "spend", "budget resets")]
    return format_fields(fields) + "\n\nThe key is shown only now: the gateway keeps its token (a hash), not the key."


def key_info(body: dict[str, Any]) -> str:
    return format_fields(key_fields(body.get("info", body)))


def user_fields(user: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("user", _text(user.get("user_id"))),
        ("email", _text(user.get("user_email"))),
        ("role", _text(user.get("user_role"))),
        ("teams", _text(user.get("teams"))),
        ("models", models(user.get("models"))),
        ("spend", money(user.get("spend")) if "spend" in user else "-"),
        ("budget", budget(user)),
        ("limits", limits(user)),
    ]


def users_table(users: list[dict[str, Any]]) -> str:
    rows = [
        [_text(u.get("user_id")), _text(u.get("user_email")), _text(u.get("user_role")), _text(u.get("teams")),
         models(u.get("models")), money(u.get("spend")), budget(u)]
        for u in users
    ]  # fmt: skip
    return format_table(["user", "email", "role", "teams", "models", "spend", "budget"], rows)


def created_user(body: dict[str, Any]) -> str:
    return created_key(body).replace("\n\n", "\n" + format_fields(user_fields(body)[:3]) + "\n\n", 1)


def user_info(body: dict[str, Any]) -> str:
    out = format_fields(user_fields(body.get("user_info") or {}))
    keys = body.get("keys") or []
    return out + "\n\nkeys:\n" + keys_table(keys) if keys else out


def team_fields(team: dict[str, Any]) -> list[tuple[str, str]]:
    members = [
        f"{m.get('user_id') or m.get('user_email')} ({m.get('role', 'user')})" for m in team.get("members_with_roles") or []
    ]
    return [
        ("team", _text(team.get("team_id"))),
        ("alias", _text(team.get("team_alias"))),
        ("models", models(team.get("models"))),
        ("spend", money(team.get("spend")) if "spend" in team else "-"),
        ("budget", budget(team)),
        ("limits", limits(team)),
        ("members", _text(members)),
        ("blocked", _text(bool(team.get("blocked")))),
    ]


def team_info(body: dict[str, Any]) -> str:
    team = body.get("team_info") or body.get("data") or body
    out = format_fields(team_fields(team))
    keys = body.get("keys") or []
    return out + "\n\nkeys:\n" + keys_table(keys) if keys else out


def done(what: str) -> Callable[[Any], str]:
    """A one-line confirmation, e.g. `revoked: ...`."""

    def view(body: Any) -> str:
        if isinstance(body, dict):
            for name in ("deleted_keys", "deleted_users", "deleted_teams"):
                if name in body:
                    return f"{what}: {', '.join(str(v) for v in body[name])}"
        return what

    return view


VIEWS: dict[str, Callable[[Any], str]] = {
    "created_key": created_key,
    "key_info": key_info,
    "created_user": created_user,
    "user_info": user_info,
    "team_info": team_info,
}
