"""An OpenID Connect relying party: the authorization code flow with PKCE (S256) against any
provider found by issuer discovery (OpenID Connect Discovery 1.0).

`begin` makes a sign-in: the provider's authorization URL and the `Pending` sign-in (state, nonce,
PKCE verifier) the browser keeps in a sealed cookie until it comes back. `finish` exchanges the code
(with the verifier), verifies the ID token (signature by the provider's JWKS, `iss`, `aud`, `azp`,
`exp`, `iat`, `nonce`) and returns its claims, completed from the userinfo endpoint when the ID
token lacks the ones the gateway reads (providers may keep them there for the code flow).

The provider's metadata and keys are fetched once and kept; the keys are fetched again when a
token names a key id not seen yet (the provider rotated its keys).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import msgspec
import structlog

from gateway.console.sso_config import SsoSettings

log = structlog.get_logger()

# Asymmetric signatures only: an HMAC-signed ID token would be signed with our own client secret.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_SKEW = 60  # seconds of leeway on exp / iat
MAX_ANSWER_BYTES = 1 << 20


class SsoError(Exception):
    """Sign-in failed; `message` can be shown to the user (it holds no secret)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """A sign-in under way: what the callback must find again."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    next: str = "/ui"


class Metadata(msgspec.Struct, frozen=True, kw_only=True):
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    id_token_signing_alg_values_supported: list[str] = msgspec.field(default_factory=lambda: ["RS256"])
    token_endpoint_auth_methods_supported: list[str] = msgspec.field(default_factory=lambda: ["client_secret_basic"])


class TokenAnswer(msgspec.Struct, kw_only=True):
    id_token: str | None = None
    access_token: str | None = None
    token_type: str | None = None


def _error_code(answer: httpx.Response) -> str | None:
    try:
        found = msgspec.json.decode(answer.content)
    except msgspec.DecodeError:
        return None
    return str(found.get("error"))[:80] if isinstance(found, dict) else None


def code_challenge(verifier: str) -> str:
    """PKCE S256 (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    def __init__(self, settings: SsoSettings) -> None:
        self.settings = settings
        self._metadata: Metadata | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._http = httpx.AsyncClient(timeout=settings.http_timeout, follow_redirects=False)

    async def close(self) -> None:
        await self._http.aclose()

    async def _get_json(self, url: str, what: str, **kwargs: Any) -> Any:
        try:
            answer = await self._http.get(url, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("sso_provider_unreachable", what=what, url=url, error=type(exc).__name__)
            raise SsoError("the sign-in provider cannot be reached; try again later", 502) from exc
        if answer.status_code != 200 or len(answer.content) > MAX_ANSWER_BYTES:
            log.warning("sso_provider_refused", what=what, url=url, status=answer.status_code)
            raise SsoError(f"the sign-in provider's {what} could not be read", 502)
        try:
            return msgspec.json.decode(answer.content)
        except msgspec.DecodeError as exc:
            raise SsoError(f"the sign-in provider's {what} is not JSON", 502) from exc

    async def metadata(self) -> Metadata:
        if self._metadata is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            raw = await self._get_json(url, "discovery document")
            try:
                found = msgspec.convert(raw, Metadata)
            except msgspec.ValidationError as exc:
                raise SsoError(f"the sign-in provider's discovery document is incomplete: {exc}", 502) from exc
            if found.issuer != self.settings.issuer:  # OpenID Connect Discovery §4.3
                log.error("sso_issuer_mismatch", configured=self.settings.issuer, discovered=found.issuer)
                raise SsoError("the sign-in provider names another issuer than the one configured", 502)
            self._metadata = found
        return self._metadata

    async def _key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        for refetch in (False, True):
            if refetch or not self._keys:
                meta = await self.metadata()
                jwks = jwt.PyJWKSet.from_dict(await self._get_json(meta.jwks_uri, "signing keys"))
                self._keys = {k.key_id or "": k for k in jwks.keys if k.public_key_use in (None, "sig")}
            if kid is not None and kid in self._keys:
                return self._keys[kid]
            if kid is None:
                usable = [k for k in self._keys.values() if k.algorithm_name in (alg, None)]
                if len(usable) == 1:
                    return usable[0]
        raise SsoError("the ID token is signed with a key the sign-in provider does not publish")

    async def begin(self, redirect_uri: str, next_path: str) -> tuple[str, Pending]:
        """The provider's authorization URL for a new sign-in, and the sign-in to keep."""
        meta = await self.metadata()
        pending = Pending(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),  # 86 characters (RFC 7636: 43 to 128)
            redirect_uri=redirect_uri,
            next=next_path,
        )
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": code_challenge(pending.verifier),
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in meta.authorization_endpoint else "?"
        return f"{meta.authorization_endpoint}{separator}{urlencode(query)}", pending

    async def finish(self, code: str, pending: Pending) -> tuple[dict[str, Any], str]:
        """The verified claims of the signed-in user (and the raw ID token, for logout)."""
        meta = await self.metadata()
        tokens = await self._exchange(meta, code, pending)
        if not tokens.id_token:
            raise SsoError("the sign-in provider sent no ID token (is `openid` among the scopes?)", 502)
        claims = await self._verify(meta, tokens.id_token, pending.nonce)
        wanted = [self.settings.email_claim, self.settings.role_claim, self.settings.teams_claim]
        if any(c and c not in claims for c in wanted) and meta.userinfo_endpoint and tokens.access_token:
            info = await self._get_json(
                meta.userinfo_endpoint, "user info", headers={"authorization": f"Bearer {tokens.access_token}"}
            )
            if not isinstance(info, dict) or info.get("sub") != claims["sub"]:  # OIDC Core §5.3.2
                raise SsoError("the sign-in provider's user info is of another user", 502)
            claims = {**info, **claims}
        return claims, tokens.id_token

    async def _exchange(self, meta: Metadata, code: str, pending: Pending) -> TokenAnswer:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.verifier,
        }
        auth: httpx.Auth | None = None
        secret = self.settings.client_secret
        if secret is None:
            form["client_id"] = self.settings.client_id
        elif "client_secret_basic" in meta.token_endpoint_auth_methods_supported:
            auth = httpx.BasicAuth(self.settings.client_id, secret.reveal())
        else:
            form |= {"client_id": self.settings.client_id, "client_secret": secret.reveal()}
        try:
            answer = await self._http.post(
                meta.token_endpoint, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT, headers={"accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            log.warning("sso_provider_unreachable", what="token", error=type(exc).__name__)
            raise SsoError("the sign-in provider cannot be reached; try again later", 502) from exc
        if answer.status_code != 200:
            # The provider's error code only (its description may echo what we sent).
            error = _error_code(answer)
            log.warning("sso_code_refused", status=answer.status_code, error=error)
            raise SsoError("the sign-in provider refused the sign-in code; sign in again")
        try:
            return msgspec.json.decode(answer.content, type=TokenAnswer)
        except msgspec.DecodeError as exc:
            raise SsoError("the sign-in provider's token answer is not JSON", 502) from exc

    async def _verify(self, meta: Metadata, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise SsoError("the ID token is malformed") from exc
        allowed = [a for a in meta.id_token_signing_alg_values_supported if a in SIGNING_ALGORITHMS] or ["RS256"]
        alg = header.get("alg")
        if alg not in allowed:
            raise SsoError(f"the ID token is signed with {alg!r}, which is not accepted")
        key = await self._key(header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=allowed,
                audience=self.settings.client_id,
                issuer=self.settings.issuer,
                leeway=CLOCK_SKEW,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            log.warning("sso_id_token_refused", reason=str(exc))
            raise SsoError(f"the ID token was refused: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:  # OIDC Core §3.1.3.7
            raise SsoError("the ID token was issued to another client")
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SsoError("the ID token's nonce is not this sign-in's; sign in again")
        return claims
