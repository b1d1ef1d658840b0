"""The console's single sign-on settings: `general_settings.ui_sso` of the config file, parsed once
with the edge's settings (gateway/settings.py).

    general_settings:
      ui_sso:
        issuer: https://login.example.com/realms/corp      # OpenID Connect discovery from here
        client_id: os.environ/GENERIC_CLIENT_ID
        client_secret: os.environ/GENERIC_CLIENT_SECRET
        scopes: [openid, email, profile]                  # openid is always asked for
        redirect_url: https://gw.example.com/ui/sso/callback  # default: this edge's /ui/sso/callback
        allowed_email_domains: [corp.example]             # empty: any verified address
        role_claim: groups                                # a string or a list of strings
        role_mapping: {llmgw-admins: proxy_admin, llmgw-team-leads: team_admin}
        default_role: internal_user                       # when no claim value is mapped
        teams_claim: teams                                # the teams (ids) the user is a member of

A user's role is the highest their claim's values map to (proxy_admin > team_admin > internal_user).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from llmgw.config import ConfigError, Secret, resolve_env

ROLE_PROXY_ADMIN = "proxy_admin"
ROLE_TEAM_ADMIN = "team_admin"  # an admin of the teams of their teams claim
ROLE_INTERNAL_USER = "internal_user"
SSO_ROLES = (ROLE_PROXY_ADMIN, ROLE_TEAM_ADMIN, ROLE_INTERNAL_USER)  # highest first

WHERE = "general_settings.ui_sso"


class SsoSettings(msgspec.Struct, frozen=True, kw_only=True):
    issuer: str
    client_id: str
    client_secret: Secret | None  # None: a public client (PKCE only)
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    redirect_url: str | None = None
    allowed_email_domains: tuple[str, ...] = ()
    user_id_claim: str = "sub"
    email_claim: str = "email"
    role_claim: str | None = None
    role_mapping: tuple[tuple[str, str], ...] = ()  # (claim value, role)
    default_role: str = ROLE_INTERNAL_USER
    teams_claim: str | None = None
    http_timeout: float = 10.0  # seconds for each call to the provider

    def role_for(self, claims: Mapping[str, Any]) -> str:
        """The highest role the role claim's values map to; `default_role` when none does."""
        if self.role_claim is None:
            return self.default_role
        values = set(claim_strings(claims.get(self.role_claim)))
        mapped = {role for value, role in self.role_mapping if value in values}
        return next((r for r in SSO_ROLES if r in mapped), self.default_role)

    def teams_for(self, claims: Mapping[str, Any]) -> list[str] | None:
        """The teams the claim names, in order, once each; None when no teams claim is configured."""
        if self.teams_claim is None:
            return None
        return list(dict.fromkeys(claim_strings(claims.get(self.teams_claim))))

    def email_allowed(self, email: str) -> bool:
        if not self.allowed_email_domains:
            return True
        domain = email.rpartition("@")[2].lower()
        return bool(domain) and domain in self.allowed_email_domains


def claim_strings(value: Any) -> list[str]:
    """A claim as strings: one string (space- or comma-separated lists are common), or a list."""
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str) and v]
    return []


def _text(raw: Mapping[str, Any], name: str, env: Mapping[str, str], required: bool = False) -> str | None:
    value = resolve_env(raw.get(name), env, f"{WHERE}.{name}")
    if value is None or value == "":
        if required:
            raise ConfigError(f"{WHERE}.{name}: required")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{WHERE}.{name}: expected a string, got {value!r}")
    return value


def _strings(raw: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{WHERE}.{name}: expected a list of strings, got {value!r}")
    return tuple(value)


def _role(value: Any, where: str) -> str:
    if value not in SSO_ROLES:
        raise ConfigError(f"{where}: expected one of {', '.join(SSO_ROLES)}, got {value!r}")
    return str(value)


def sso_settings(general: Mapping[str, Any], env: Mapping[str, str]) -> SsoSettings | None:
    """`general_settings.ui_sso`, checked; None when single sign-on is not configured."""
    raw = general.get("ui_sso")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{WHERE}: expected a mapping")
    known = set(SsoSettings.__struct_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{WHERE}: unknown setting(s) {', '.join(unknown)}")
    issuer = _text(raw, "issuer", env, required=True) or ""
    if not issuer.startswith(("https://", "http://")):
        raise ConfigError(f"{WHERE}.issuer: expected an http(s) URL, got {issuer!r}")
    secret = _text(raw, "client_secret", env)
    scopes = _strings(raw, "scopes") or ("openid", "email", "profile")
    if "openid" not in scopes:
        scopes = ("openid", *scopes)
    mapping = raw.get("role_mapping") or {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{WHERE}.role_mapping: expected a mapping of claim values to roles")
    pairs = tuple((str(k), _role(v, f"{WHERE}.role_mapping.{k}")) for k, v in mapping.items())
    timeout = raw.get("http_timeout", 10.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{WHERE}.http_timeout: expected a number of seconds > 0, got {timeout!r}")
    return SsoSettings(
        issuer=issuer,  # as the provider writes it (`iss` is compared with it exactly)
        client_id=_text(raw, "client_id", env, required=True) or "",
        client_secret=Secret(secret) if secret else None,
        scopes=scopes,
        redirect_url=_text(raw, "redirect_url", env),
        allowed_email_domains=tuple(d.lower().lstrip("@") for d in _strings(raw, "allowed_email_domains") or ()),
        user_id_claim=_text(raw, "user_id_claim", env) or "sub",
        email_claim=_text(raw, "email_claim", env) or "email",
        role_claim=_text(raw, "role_claim", env),
        role_mapping=pairs,
        default_role=_role(raw.get("default_role", ROLE_INTERNAL_USER), f"{WHERE}.default_role"),
        teams_claim=_text(raw, "teams_claim", env),
        http_timeout=float(timeout),
    )
