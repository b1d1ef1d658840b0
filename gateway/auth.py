"""Who is calling: the bearer key, checked against the master key and the virtual keys.

Checking a key costs one HMAC and a dictionary look-up in the watch-fed view: no network.
"""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime

import msgspec

from gateway.budget_objects import bounded
from gateway.errors import GatewayError
from gateway.identity import IdentityView
from llmgw.config import Secret
from llmgw.contracts import (
    ROLE_PROXY_ADMIN,
    ROLE_PROXY_ADMIN_VIEWER,
    BudgetRecord,
    Caller,
    EndUserRecord,
    ErrorCode,
    ErrorType,
    KeyRecord,
    OrganizationRecord,
    TeamRecord,
    UserRecord,
    canonical_role,
)
from llmgw.secrets import KeyHasher


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    role: str = ROLE_PROXY_ADMIN  # the key's user's role by its LiteLLM name (the master key: proxy_admin)
    key: KeyRecord | None = None  # None for the master key
    user: UserRecord | None = None
    team: TeamRecord | None = None
    organization: OrganizationRecord | None = None  # the team's organization
    end_user: EndUserRecord | None = None  # whom the request is for (gateway/end_users.py)
    member_budget: BudgetRecord | None = None  # bounds the key's user within the key's team

    @property
    def is_admin(self) -> bool:
        """May use every admin route (the master key, or a key of a proxy admin)."""
        return self.role == ROLE_PROXY_ADMIN

    @property
    def views_all(self) -> bool:
        """May read every record (a proxy admin or a proxy admin viewer)."""
        return self.role in (ROLE_PROXY_ADMIN, ROLE_PROXY_ADMIN_VIEWER)

    @property
    def priority(self) -> str:
        return self.key.priority if self.key is not None else "interactive"


def forbidden(message: str, param: str | None = None) -> GatewayError:
    """403: a valid key asked for what its role or its scope does not allow."""
    return GatewayError(403, message, ErrorType.PERMISSION, ErrorCode.PERMISSION_DENIED, param)


def _unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, ErrorType.AUTHENTICATION, ErrorCode.INVALID_API_KEY)


class UnknownKey(GatewayError):
    """A key this edge's view does not hold (maybe created on another edge a moment ago)."""

    key_guess = True

    def __init__(self, token: str) -> None:
        super().__init__(401, "Invalid API key.", ErrorType.AUTHENTICATION, ErrorCode.INVALID_API_KEY)
        self.token = token


def bearer_key(authorization: str | None, api_key_header: str | None = None) -> str:
    """The key from `Authorization: Bearer <key>` (or an `api-key` header, as Azure clients send)."""
    if authorization:
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            return key.strip()
        raise _unauthorized("Authorization header must be `Bearer <key>`")
    if api_key_header and api_key_header.strip():
        return api_key_header.strip()
    raise _unauthorized("You didn't provide an API key. Send it as `Authorization: Bearer <key>`.")


class Authenticator:
    def __init__(self, master_key: Secret | None, hasher: KeyHasher, identity: IdentityView) -> None:
        self.hasher = hasher
        self.identity = identity
        self._master = master_key.reveal().encode() if master_key else None
        self._master_principal = (
            Principal(caller=Caller(key_hash=hasher.token(master_key.reveal()), key_alias="master")) if master_key else None
        )

    def authenticate(self, authorization: str | None, api_key_header: str | None = None) -> Principal:
        key = bearer_key(authorization, api_key_header)
        if self._master is not None and hmac.compare_digest(key.encode(), self._master):
            return self._master_principal  # type: ignore[return-value]
        return self.by_token(self.hasher.token(key))

    def by_token(self, token: str) -> Principal:
        """The caller of a key known by its token (its HMAC): the batch runner runs a batch's lines
        as the key that created it, checked again for each line (a key revoked since is refused)."""
        if self._master_principal is not None and hmac.compare_digest(token, self._master_principal.caller.key_hash):
            return self._master_principal
        record = self.identity.key(token)  # a dict look-up by HMAC: no timing signal about the key
        if record is None:
            if self.identity.key_deleted(token):
                raise _unauthorized("This API key has been deleted.")
            raise UnknownKey(token)
        if record.blocked:
            raise _unauthorized("This API key is blocked.")
        if record.expires is not None and record.expires <= time.time():
            when = datetime.fromtimestamp(record.expires, UTC).isoformat()
            raise _unauthorized(f"This API key expired at {when}.")
        team = self.identity.team(record.team_id)
        if team is not None and team.blocked:
            raise _unauthorized(f"The team {record.team_id} of this API key is blocked.")
        user = self.identity.user(record.user_id)
        org = self.identity.organization(team.organization_id) if team is not None else None
        if org is not None and org.blocked:
            raise _unauthorized(f"The organization {org.organization_id} of this API key's team is blocked.")
        # Budget objects named by the key, its user, its team or its organization bound them
        # (gateway/budget_objects.py).
        identity = self.identity
        org = bounded(org, identity.budget(org.budget_id)) if org is not None else None
        record = bounded(record, identity.budget(record.budget_id))
        user = bounded(user, identity.budget(user.budget_id)) if user is not None else None
        member = team.member(record.user_id) if team is not None else None
        team = bounded(team, identity.budget(team.budget_id)) if team is not None else None
        return Principal(
            caller=Caller(key_hash=token, key_alias=record.key_alias, user_id=record.user_id, team_id=record.team_id),
            role=canonical_role(user.user_role if user is not None else None),
            key=record,
            user=user,
            team=team,
            organization=org,
            member_budget=identity.budget(member.budget_id) if member is not None else None,
        )

    async def authenticate_fresh(self, authorization: str | None, api_key_header: str | None = None) -> Principal:
        """`authenticate`, but a key the view does not hold yet is looked up in KV once: a key
        generated on another edge works here on the very next request, before the watch delivers it."""
        try:
            return self.authenticate(authorization, api_key_header)
        except UnknownKey as miss:
            if not await self.identity.fetch_key(miss.token):
                raise
        return self.authenticate(authorization, api_key_header)

    async def by_token_fresh(self, token: str) -> Principal:
        """`by_token`, a key the view does not hold yet looked up in KV once."""
        try:
            return self.by_token(token)
        except UnknownKey:
            if not await self.identity.fetch_key(token):
                raise
        return self.by_token(token)

    def admin(self, authorization: str | None, api_key_header: str | None = None) -> Principal:
        """A caller that may change anything: 401 without a valid key, 403 for one of another role."""
        return self.must_admin(self.authenticate(authorization, api_key_header))

    def viewer(self, authorization: str | None, api_key_header: str | None = None) -> Principal:
        """A caller that may read every record: a proxy admin or a proxy admin viewer (else 403)."""
        return self.must_view_all(self.authenticate(authorization, api_key_header))

    @staticmethod
    def must_admin(principal: Principal) -> Principal:
        """The principal if it is a proxy admin's (a key's or a console session's), else 403."""
        if not principal.is_admin:
            raise forbidden(
                "This admin endpoint needs the master key or a key of a user with role `proxy_admin`;"
                f" this key's role is `{principal.role}`."
            )
        return principal

    @staticmethod
    def must_view_all(principal: Principal) -> Principal:
        """The principal if it may read every record, else 403."""
        if not principal.views_all:
            raise forbidden(
                "This admin endpoint needs the master key or a key of a user with role `proxy_admin` or"
                f" `proxy_admin_viewer`; this key's role is `{principal.role}`."
            )
        return principal

    @property
    def master(self) -> Principal | None:
        """The master key's principal (None when no master key is set)."""
        return self._master_principal

    def check_master(self, key: str) -> bool:
        """Whether `key` is the master key (constant time)."""
        return self._master is not None and hmac.compare_digest(key.encode(), self._master)
