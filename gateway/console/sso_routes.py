"""Single sign-on for the console (OpenID Connect, gateway/console/oidc.py):

- `GET /ui/sso/login?next=/ui/...`: a new sign-in, kept in a sealed cookie (encrypted, 10 minutes,
  path /ui/sso, HttpOnly, SameSite=Lax so that it comes back with the provider's redirect); the
  browser is sent to the provider.
- `GET /ui/sso/callback`: the state checked against the sealed sign-in (and the issuer, when the
  provider names it, RFC 9207), the code exchanged with the PKCE verifier, the ID token verified,
  the e-mail domain checked (403 page outside the allowed domains), the user found or created and
  kept in step with the claims (gateway/console/sso_users.py), then a console session and its
  cookie; the browser goes on to the page it asked for.
- Signing out (`POST /ui/logout`, the console's) of a session made here: once the session ended
  and its cookie is cleared, the browser is sent on to the provider's `end_session_endpoint`
  (RP-initiated logout, back to the login page) when the provider has one (`provider_logout`,
  `leave_for`).

The callback's URL is `redirect_url` when configured (behind a proxy that ends TLS, say so there),
else this edge's own `/ui/sso/callback`.
"""

from __future__ import annotations

import base64
import hmac
from html import escape
from typing import Protocol
from urllib.parse import urlencode

import msgspec
import structlog
from cryptography.fernet import Fernet, InvalidToken
from litestar import Request, Response, get
from litestar.response import Redirect

from gateway.admin.keys import KeyService
from gateway.admin.teams import TeamService
from gateway.console.oidc import OidcClient, Pending, SsoError
from gateway.console.sso_config import SsoSettings
from gateway.console.sso_users import SsoUsers
from gateway.edge import Edge
from gateway.errors import GatewayError
from llmgw.secrets import derive_key

log = structlog.get_logger()

SIGN_IN_COOKIE = "llmgw_sso"
SIGN_IN_SECONDS = 600  # a sign-in must come back from the provider within this
SSO_VIA = "oidc"


def console_sso(edge: Edge, keys: KeyService, teams: TeamService) -> ConsoleSso | None:
    """The console's single sign-on, when `general_settings.ui_sso` configures it."""
    settings = edge.settings.sso
    if settings is None:
        return None
    return ConsoleSso(settings, edge.settings.secret, edge.console, SsoUsers(edge, keys, teams, settings))


class Sessions(Protocol):
    """What single sign-on needs of the console's sessions (gateway/console/sessions.py)."""

    async def start(self, *, user_id: str, email: str | None, role: str, teams: list[str], via: str) -> str: ...

    def set_cookie(self, response: Response, session_id: str, secure: bool) -> None: ...


class SignInSeal:
    """The pending sign-in, encrypted and authenticated under the server's secret."""

    def __init__(self, secret: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret, "console-sso-sign-in")))

    def seal(self, pending: Pending) -> str:
        return self._fernet.encrypt(msgspec.json.encode(pending)).decode()

    def open(self, sealed: str | None) -> Pending | None:
        if not sealed:
            return None
        try:
            return msgspec.json.decode(self._fernet.decrypt(sealed.encode(), ttl=SIGN_IN_SECONDS), type=Pending)
        except (InvalidToken, msgspec.DecodeError):
            return None


def safe_next(value: str | None) -> str:
    """Where to go once signed in: a console page of this gateway only (no open redirect)."""
    if value and (value == "/ui" or value.startswith("/ui/")) and "\\" not in value and "://" not in value:
        return value
    return "/ui"


def is_tls(request: Request) -> bool:
    """Served over TLS (directly, or behind a proxy that says so): the cookies are Secure then."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def page(title: str, message: str, status: int) -> Response:
    """A small page of its own: the console's pages need a session, which a refused person lacks."""
    body = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>llmgw: "
        f"{escape(title)}</title></head><body><main><h1 id=sso-title>{escape(title)}</h1>"
        f"<p id=sso-message>{escape(message)}</p><p><a id=sso-again href=/ui/login>Back to sign-in</a></p>"
        "</main></body></html>"
    )
    headers = {"cache-control": "no-store", "content-security-policy": "default-src 'none'"}
    return Response(content=body, media_type="text/html; charset=utf-8", status_code=status, headers=headers)


class ConsoleSso:
    """Single sign-on of the console: its routes, and where a signed-out session goes."""

    def __init__(self, settings: SsoSettings, secret: bytes, sessions: Sessions, users: SsoUsers) -> None:
        self.settings = settings
        self.client = OidcClient(settings)
        self.seal = SignInSeal(secret)
        self.sessions = sessions
        self.users = users

    async def close(self) -> None:
        await self.client.close()

    def redirect_uri(self, request: Request) -> str:
        return self.settings.redirect_url or str(request.base_url).rstrip("/") + "/ui/sso/callback"

    async def provider_logout(self, request: Request) -> str | None:
        """The provider's logout URL for a session that ended (RP-initiated, back to the login
        page); None when the provider has no end_session_endpoint."""
        try:
            meta = await self.client.metadata()
        except SsoError:
            return None
        if not meta.end_session_endpoint:
            return None
        login_page = str(request.base_url).rstrip("/") + "/ui/login"
        query = urlencode({"client_id": self.settings.client_id, "post_logout_redirect_uri": login_page})
        separator = "&" if "?" in meta.end_session_endpoint else "?"
        return f"{meta.end_session_endpoint}{separator}{query}"

    async def begin(self, request: Request) -> Response:
        try:
            url, pending = await self.client.begin(self.redirect_uri(request), safe_next(request.query_params.get("next")))
        except SsoError as exc:
            return page("Single sign-on is unavailable", exc.message, exc.status)
        response = no_store(Redirect(url, status_code=303))
        response.set_cookie(
            SIGN_IN_COOKIE,
            self.seal.seal(pending),
            max_age=SIGN_IN_SECONDS,
            path="/ui/sso",
            secure=is_tls(request),
            httponly=True,
            samesite="lax",
        )
        return response

    async def complete(self, request: Request) -> Response:
        pending = self.seal.open(request.cookies.get(SIGN_IN_COOKIE))
        state = request.query_params.get("state") or ""
        error = request.query_params.get("error")
        code = request.query_params.get("code")
        try:
            if pending is None:
                raise SsoError("this sign-in expired or was started elsewhere; sign in again")
            if not hmac.compare_digest(state.encode(), pending.state.encode()):
                raise SsoError("this sign-in's state does not match; sign in again")
            issuer = request.query_params.get("iss")
            if issuer is not None and issuer != self.settings.issuer:  # RFC 9207: another provider's answer
                raise SsoError("this answer comes from another sign-in provider; sign in again")
            if error:
                raise SsoError(f"the sign-in provider did not sign you in ({error[:80]})", 401)
            if not code:
                raise SsoError("the sign-in provider sent no code")
            claims, _ = await self.client.finish(code, pending)
            user = await self.users.sign_in(claims)
        except (SsoError, GatewayError) as exc:
            log.warning("sso_sign_in_refused", status=exc.status, reason=exc.message)
            refused = page("Not allowed to sign in" if exc.status == 403 else "Sign-in failed", exc.message, exc.status)
            refused.delete_cookie(SIGN_IN_COOKIE, path="/ui/sso")
            return refused
        session_id = await self.sessions.start(
            user_id=user.user_id, email=user.email, role=user.role, teams=user.teams, via=SSO_VIA
        )
        log.info("sso_signed_in", user_id=user.user_id, role=user.role, teams=len(user.teams))
        response = no_store(Redirect(pending.next, status_code=303))
        response.delete_cookie(SIGN_IN_COOKIE, path="/ui/sso")
        self.sessions.set_cookie(response, session_id, is_tls(request))
        return response

    def routes(self) -> list:
        @get("/ui/sso/login", include_in_schema=False)
        async def sso_login(request: Request) -> Response:
            return await self.begin(request)

        @get("/ui/sso/callback", include_in_schema=False)
        async def sso_callback(request: Request) -> Response:
            return await self.complete(request)

        return [sso_login, sso_callback]


def leave_for(url: str) -> Response:
    """A page that sends the browser on to the provider's logout. Not a redirect: a sign-out form's
    redirect to another origin is blocked by the console's `form-action 'self'`; a refresh is not."""
    shown = escape(url, quote=True)
    body = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="0;url={shown}"><title>llmgw: signing out</title></head>'
        f'<body><p>Signed out. <a id="sso-provider-logout" href="{shown}">Sign out of your provider too</a>.</p></body></html>'
    )
    headers = {"cache-control": "no-store", "content-security-policy": "default-src 'none'", "referrer-policy": "no-referrer"}
    return Response(content=body, media_type="text/html; charset=utf-8", status_code=200, headers=headers)


def no_store(response: Response) -> Response:
    response.headers["cache-control"] = "no-store"
    return response
