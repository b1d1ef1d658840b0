"""The edge's in-memory view of keys, users, teams and policy, fed by KV watches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from nats.js import JetStreamContext

from llmgw.contracts import (
    BUDGET_PREFIX,
    END_USER_PREFIX,
    POLICY_KEY,
    POLICY_PREFIX,
    BudgetRecord,
    EndUserRecord,
    KeyRecord,
    OrganizationRecord,
    PolicyRecord,
    Subjects,
    TeamRecord,
    UserRecord,
    budget_key,
    end_user_key,
    kv_key,
)
from llmgw.kv import WatchedMap, open_bucket


def config_teams(litellm_settings: Mapping[str, Any]) -> dict[str, TeamRecord]:
    """`default_team_settings` from the config file: teams known before anyone creates them."""
    out: dict[str, TeamRecord] = {}
    for entry in litellm_settings.get("default_team_settings") or []:
        if isinstance(entry, dict) and entry.get("team_id"):
            fields = {k: v for k, v in entry.items() if k in TeamRecord.__struct_fields__}
            out[str(entry["team_id"])] = msgspec.convert(fields, TeamRecord)
    return out


class IdentityView:
    def __init__(self, subjects: Subjects, default_teams: dict[str, TeamRecord]) -> None:
        self.subjects = subjects
        self.default_teams = default_teams
        self.keys: WatchedMap[KeyRecord] = None  # type: ignore[assignment]  # set in start()
        self.users: WatchedMap[UserRecord] = None  # type: ignore[assignment]
        self.teams: WatchedMap[TeamRecord] = None  # type: ignore[assignment]
        self.policies: WatchedMap[PolicyRecord] = None  # type: ignore[assignment]
        self.orgs: WatchedMap[OrganizationRecord] = None  # type: ignore[assignment]
        self.end_users: WatchedMap[EndUserRecord] = None  # type: ignore[assignment]
        self.budgets: WatchedMap[BudgetRecord] = None  # type: ignore[assignment]

    async def start(self, js: JetStreamContext) -> None:
        s = self.subjects
        self.keys = WatchedMap(await open_bucket(js, s.keys_bucket), msgspec.json.Decoder(KeyRecord), "keys")
        self.users = WatchedMap(await open_bucket(js, s.users_bucket), msgspec.json.Decoder(UserRecord), "users")
        self.teams = WatchedMap(await open_bucket(js, s.teams_bucket), msgspec.json.Decoder(TeamRecord), "teams")
        self.policies = WatchedMap(
            await open_bucket(js, s.settings_bucket), msgspec.json.Decoder(PolicyRecord), "policies", POLICY_PREFIX
        )
        self.orgs = WatchedMap(
            await open_bucket(js, s.organizations_bucket), msgspec.json.Decoder(OrganizationRecord), "organizations"
        )
        settings = await open_bucket(js, s.settings_bucket)
        self.end_users = WatchedMap(settings, msgspec.json.Decoder(EndUserRecord), "end_users", END_USER_PREFIX)
        self.budgets = WatchedMap(settings, msgspec.json.Decoder(BudgetRecord), "budgets", BUDGET_PREFIX)
        for m in (self.keys, self.users, self.teams, self.policies, self.orgs, self.end_users, self.budgets):
            await m.start()

    async def stop(self) -> None:
        for m in (self.keys, self.users, self.teams, self.policies, self.orgs, self.end_users, self.budgets):
            if m is not None:
                await m.stop()

    def key(self, token: str) -> KeyRecord | None:
        return self.keys.items.get(token)

    async def fetch_key(self, token: str) -> bool:
        """Read one key straight from KV into the view; True if it exists."""
        try:
            entry = await self.keys.kv.get(token)
        except Exception:
            return False
        self.keys.apply(token, entry.revision or 0, entry.operation, entry.value)
        return token in self.keys.items

    def key_deleted(self, token: str) -> bool:
        return token in self.keys.deleted

    def user(self, user_id: str | None) -> UserRecord | None:
        return self.users.items.get(kv_key(user_id)) if user_id else None

    def user_by_email(self, email: str) -> UserRecord | None:
        """The user with this e-mail address (compared without case), the oldest if several."""
        wanted = email.strip().lower()
        found = [u for u in self.users.items.values() if u.user_email and u.user_email.strip().lower() == wanted]
        return min(found, key=lambda u: u.created_at) if found else None

    def team(self, team_id: str | None) -> TeamRecord | None:
        if not team_id:
            return None
        return self.teams.items.get(kv_key(team_id)) or self.default_teams.get(team_id)

    def organization(self, organization_id: str | None) -> OrganizationRecord | None:
        return self.orgs.items.get(kv_key(organization_id)) if organization_id else None

    def end_user(self, end_user_id: str | None) -> EndUserRecord | None:
        return self.end_users.items.get(end_user_key(end_user_id)) if end_user_id else None

    def budget(self, budget_id: str | None) -> BudgetRecord | None:
        """The budget object `budget_id` names (None for none, or one deleted since)."""
        return self.budgets.items.get(budget_key(budget_id)) if budget_id else None

    def global_system_prompt(self) -> str | None:
        policy = self.policies.items.get(POLICY_KEY)
        return policy.system_prompt if policy else None
