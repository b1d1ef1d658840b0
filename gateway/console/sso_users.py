"""Who a signed-in user is in the gateway: their user record, made on the first sign-in by the
admin service code of `/user/new` (no key is made: a console session is not an API key), and kept
in step with the provider's claims on every sign-in.

- The user is found by the user id claim (`sub` by default), else by e-mail address (a user an
  admin created beforehand under that address; not when the provider says it is unverified), else
  created.
- With a role claim configured, the user's role follows it: `proxy_admin`, or `internal_user` (a
  `team_admin` is an internal user who is an admin of the teams of their teams claim). Without
  one, a user whose record is a proxy admin's signs in as one; anyone else gets `default_role`.
- With a teams claim configured, the provider owns team membership: the user is put on each
  claimed team that exists (as `admin` for a team admin, else `user`) and taken off the others.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import structlog

from gateway.admin.keys import KeyService
from gateway.admin.teams import TeamService
from gateway.admin.users import create_user
from gateway.console.oidc import SsoError
from gateway.console.sso_config import ROLE_PROXY_ADMIN, ROLE_TEAM_ADMIN, SsoSettings
from gateway.edge import Edge
from gateway.errors import GatewayError
from llmgw.contracts import ROLE_INTERNAL_USER, TEAM_ROLE_ADMIN, TEAM_ROLE_USER, TeamMember, UserRecord, canonical_role, kv_key
from llmgw.contracts import ROLE_PROXY_ADMIN as USER_ROLE_PROXY_ADMIN

log = structlog.get_logger()


class SignedIn(msgspec.Struct, frozen=True, kw_only=True):
    """A user the provider vouched for, as the gateway knows them now."""

    user_id: str
    email: str | None
    role: str  # SSO_ROLES
    teams: list[str]


class SsoUsers:
    def __init__(self, edge: Edge, keys: KeyService, teams: TeamService, settings: SsoSettings) -> None:
        self.edge = edge
        self.keys = keys
        self.teams = teams
        self.settings = settings

    def identify(self, claims: dict[str, Any]) -> tuple[str, str | None]:
        """(user id, e-mail address) from the claims; 403 when the address is not allowed."""
        s = self.settings
        user_id = claims.get(s.user_id_claim)
        if not isinstance(user_id, str) or not user_id:
            raise SsoError(f"the sign-in provider sent no `{s.user_id_claim}` claim", 502)
        email = claims.get(s.email_claim)
        email = email.strip().lower() if isinstance(email, str) and email.strip() else None
        if s.allowed_email_domains:
            if email is None or claims.get("email_verified") is False:
                raise SsoError("your account has no verified e-mail address, which this gateway requires", 403)
            if not s.email_allowed(email):
                raise SsoError("your e-mail address is not in a domain allowed to sign in to this gateway", 403)
        return user_id, email

    def _existing(self, user_id: str, email: str | None) -> UserRecord | None:
        found = self.edge.identity.user(user_id)
        if found is not None or email is None:
            return found
        return next((u for u in self.edge.identity.users.items.values() if (u.user_email or "").lower() == email), None)

    async def sign_in(self, claims: dict[str, Any]) -> SignedIn:
        user_id, email = self.identify(claims)
        role = self.settings.role_for(claims)
        user_role = USER_ROLE_PROXY_ADMIN if role == ROLE_PROXY_ADMIN else ROLE_INTERNAL_USER
        # Found by address only when the provider vouches for it (never an address it says is unverified).
        record = self._existing(user_id, email if claims.get("email_verified") is not False else None)
        if record is None:
            values = {"user_id": user_id, "user_email": email, "user_role": user_role, "auto_create_key": False}
            try:
                record, _ = await create_user(self.edge, self.keys, values)
                log.info("sso_user_created", user_id=user_id, role=role)
            except GatewayError as exc:  # a second sign-in of the same new user made it first
                if exc.status != 400:
                    raise
                record = await self._set_role(UserRecord(user_id=user_id, user_email=email), user_role)
        if self.settings.role_claim is not None and record.user_role != user_role:
            record = await self._set_role(record, user_role)
        elif self.settings.role_claim is None and canonical_role(record.user_role) == USER_ROLE_PROXY_ADMIN:
            role = ROLE_PROXY_ADMIN  # no role claim: an admin's record says who is a proxy admin
        user = SignedIn(user_id=record.user_id, email=email or record.user_email, role=role, teams=list(record.teams))
        return await self._sync_teams(user, record.teams, claims)

    async def _set_role(self, record: UserRecord, user_role: str) -> UserRecord:
        def change(r: UserRecord | None) -> UserRecord:
            base = r or record
            return msgspec.structs.replace(base, user_role=user_role, updated_at=time.time())

        log.info("sso_user_role_changed", user_id=record.user_id, role=user_role, was=record.user_role)
        return await self.keys.store.upsert(self.edge.identity.users, kv_key(record.user_id), change, f"user {record.user_id!r}")

    async def _sync_teams(self, user: SignedIn, had: list[str], claims: dict[str, Any]) -> SignedIn:
        """Team membership as the teams claim says (nothing changes without a teams claim)."""
        wanted = self.settings.teams_for(claims)
        if wanted is None:
            return user
        identity = self.edge.identity
        known = [t for t in wanted if identity.team(t) is not None]
        unknown = [t for t in wanted if identity.team(t) is None]
        if unknown:
            log.info("sso_unknown_teams", user_id=user.user_id, teams=unknown)
        member_role = TEAM_ROLE_ADMIN if user.role == ROLE_TEAM_ADMIN else TEAM_ROLE_USER
        for team_id in known:
            member = TeamMember(user_id=user.user_id, user_email=user.email, role=member_role)
            await self.teams.set_member(team_id, member)
        for team_id in had:
            if team_id not in known and identity.team(team_id) is not None:
                await self.teams.remove_member(team_id, user.user_id)
        return msgspec.structs.replace(user, teams=known)
