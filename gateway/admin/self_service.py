"""Keys an ordinary user makes for themselves (LiteLLM's `internal_user`: "view, create and delete
their own keys"), within their team's limits.

`/key/generate` from a caller who is no proxy admin comes here: an internal user (by key or console
session) gets a key of their own, in one of their teams (their key's team when they name none),
asking for no model the team does not allow and for no budget or rate above the team's; the
fields only an admin sets (spend, permissions, budget objects, ...) are refused by name. Viewers
(`internal_user_viewer`, `proxy_admin_viewer`) create nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.auth import Principal, forbidden
from llmgw.contracts import ROLE_INTERNAL_USER

if TYPE_CHECKING:
    from gateway.edge import Edge

# What a user may set on a key of their own; the team's value bounds each of the limits.
OWN_KEY_FIELDS = frozenset(
    {"key_alias", "team_id", "user_id", "models", "duration", "metadata", "max_budget", "soft_budget", "budget_duration"}
    | {"tpm_limit", "rpm_limit", "max_parallel_requests"}
)
BOUNDED_BY_TEAM = ("max_budget", "tpm_limit", "rpm_limit", "max_parallel_requests")


def own_key_values(edge: Edge, principal: Principal, values: dict[str, Any]) -> dict[str, Any]:
    """The values of the key an ordinary user asked for, their own user and team filled in; 403
    naming the field for whatever goes past what they may ask."""
    user_id = principal.caller.user_id
    if principal.role != ROLE_INTERNAL_USER or not user_id:
        raise forbidden(f"a {principal.role} may not create keys; ask a proxy admin")
    for name in sorted(set(values) - OWN_KEY_FIELDS):
        if values[name] is not None:
            raise forbidden(f"only a proxy admin sets `{name}` on a key", name)
    if values.get("user_id") not in (None, user_id):
        raise forbidden("an internal user creates keys for themselves only", "user_id")
    user = edge.identity.user(user_id)
    teams = list(user.teams) if user is not None else []
    team_id = values.get("team_id") or principal.caller.team_id
    if team_id is not None and team_id not in teams:
        raise forbidden(f"you are not a member of team {team_id!r}", "team_id")
    team = edge.identity.team(team_id) if team_id is not None else None
    if team is not None:
        if team.models and values.get("models"):
            outside = [m for m in values["models"] if m not in team.models]
            if outside:
                raise forbidden(f"team {team_id!r} does not allow the models {outside}", "models")
        for name in BOUNDED_BY_TEAM:
            wanted, bound = values.get(name), getattr(team, name)
            if wanted is not None and bound is not None and wanted > bound:
                raise forbidden(f"`{name}` {wanted} is past team {team_id!r}'s {bound}", name)
    return {**values, "user_id": user_id, "team_id": team_id}
