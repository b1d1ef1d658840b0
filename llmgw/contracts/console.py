"""The admin console's records: a signed-in person's session (KV, `Subjects.console_sessions_bucket`)."""

from __future__ import annotations

import msgspec

# The roles a console session carries (LiteLLM's names where it has one).
CONSOLE_ROLE_PROXY_ADMIN = "proxy_admin"
CONSOLE_ROLE_TEAM_ADMIN = "team_admin"
CONSOLE_ROLE_INTERNAL_USER = "internal_user"
CONSOLE_ROLES = (CONSOLE_ROLE_PROXY_ADMIN, CONSOLE_ROLE_TEAM_ADMIN, CONSOLE_ROLE_INTERNAL_USER)


class ConsoleSession(msgspec.Struct, frozen=True, kw_only=True):
    """One console sign-in, stored under the HMAC of its session id (the cookie's value is never
    stored). `csrf_token` must come back in a header (or form field) of every request the session
    makes to the admin API; `via` says how the person signed in (`master_key`, `oidc`, ...)."""

    user_id: str
    email: str | None = None
    role: str = CONSOLE_ROLE_INTERNAL_USER  # CONSOLE_ROLES
    teams: list[str] = []
    via: str = "master_key"
    csrf_token: str = ""
    created_at: float = 0.0
    expires_at: float = 0.0


__all__ = [
    "CONSOLE_ROLES",
    "CONSOLE_ROLE_INTERNAL_USER",
    "CONSOLE_ROLE_PROXY_ADMIN",
    "CONSOLE_ROLE_TEAM_ADMIN",
    "ConsoleSession",
]
