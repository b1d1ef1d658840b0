"""Access tokens for a Google service account (OAuth 2.0 JWT bearer grant), without google-auth.

Reference: https://developers.google.com/identity/protocols/oauth2/service-account ("Preparing to
make an authorized API call" / HTTP/REST): a JWT `{"alg": "RS256", "typ": "JWT", "kid":
private_key_id}` with claims iss (client_email), scope, aud (token_uri), iat and exp (at most an
hour later), signed with the account's private key, is POSTed form-encoded to the account's
`token_uri` with grant_type `urn:ietf:params:oauth:grant-type:jwt-bearer`; the answer is
`{"access_token", "expires_in", "token_type": "Bearer"}`.

A token is cached until shortly before it expires, and only one refresh per account runs at a
time: a burst of requests after expiry waits for that one call instead of each signing its own.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import msgspec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from llmgw.config import Deployment, Secret
from llmgw.contracts import ErrorCode, ErrorType
from workers.http_client import UpstreamClient
from workers.providers.base import fetch_body
from workers.providers.errors import UpstreamError, body_text, scrub
from workers.providers.gemini.wire import token_decoder, token_error_decoder

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME = 3600  # seconds: the longest Google accepts
REFRESH_MARGIN = 300.0  # refresh this long before expiry (less for short-lived tokens)


class _AccountFile(msgspec.Struct):
    type: str = "service_account"
    project_id: str = ""
    private_key_id: str = ""
    private_key: str = ""
    client_email: str = ""
    token_uri: str = DEFAULT_TOKEN_URI


class ServiceAccount:
    """A service account's key file, parsed once (loading an RSA key costs milliseconds)."""

    __slots__ = ("_key", "client_email", "key_id", "project_id", "token_uri")

    def __init__(self, data: _AccountFile) -> None:
        if data.type != "service_account" or not data.client_email or not data.private_key:
            raise ValueError("not a service account key (type, client_email and private_key are required)")
        key = serialization.load_pem_private_key(data.private_key.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the private key is not an RSA key")
        self.project_id = data.project_id
        self.client_email = data.client_email
        self.token_uri = data.token_uri or DEFAULT_TOKEN_URI
        self.key_id = data.private_key_id
        self._key = key

    @classmethod
    def from_text(cls, text: str) -> ServiceAccount:
        return cls(msgspec.json.decode(text, type=_AccountFile))

    def assertion(self, now: float, scope: str = SCOPE) -> str:
        """The signed JWT that is exchanged for an access token."""
        header = {"alg": "RS256", "typ": "JWT", **({"kid": self.key_id} if self.key_id else {})}
        iat = int(now)
        claims = {"iss": self.client_email, "scope": scope, "aud": self.token_uri, "iat": iat, "exp": iat + ASSERTION_LIFETIME}
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64(signature)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_service_account(value: str) -> ServiceAccount:
    """`vertex_credentials`: the key file's JSON text, or the path of the key file."""
    text = value if value.lstrip().startswith("{") else Path(value).expanduser().read_text()
    return ServiceAccount.from_text(text)


class _Token:
    __slots__ = ("refresh_at", "value")

    def __init__(self, value: str, refresh_at: float) -> None:
        self.value = value
        self.refresh_at = refresh_at


def token_refusal(status: int, content: bytes, headers: httpx.Headers, deployment: Deployment) -> UpstreamError:
    """The token endpoint's error answer (RFC 6749 section 5.2) as the client's 502."""
    try:
        err = token_error_decoder.decode(content)
        reason = f"{err.error}: {err.error_description}".strip(": ")
    except msgspec.DecodeError:
        reason = body_text(content)
    return UpstreamError(
        502,
        f"the token endpoint refused the service account of deployment {deployment.id} ({status} {scrub(reason, deployment)[:200]})",
        ErrorType.API,
        ErrorCode.UPSTREAM_ERROR,
    )


class TokenSource:
    """Service accounts (by their `vertex_credentials` value) and their cached access tokens."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self._accounts: dict[str, ServiceAccount] = {}
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def account(self, deployment: Deployment) -> ServiceAccount:
        credentials = deployment.option("vertex_credentials")
        if credentials is None:
            raise UpstreamError(500, f"deployment {deployment.id} has no vertex_credentials", ErrorType.API, ErrorCode.INTERNAL)
        value = credentials.reveal() if isinstance(credentials, Secret) else str(credentials)
        account = self._accounts.get(value)
        if account is None:
            try:
                account = load_service_account(value)
            except (OSError, ValueError, msgspec.MsgspecError) as exc:
                reason = type(exc).__name__ if isinstance(exc, OSError) else scrub(str(exc), deployment)[:200]
                raise UpstreamError(
                    500,
                    f"the vertex_credentials of deployment {deployment.id} cannot be used: {reason}",
                    ErrorType.API,
                    ErrorCode.INTERNAL,
                ) from None
            self._accounts[value] = account
        return account

    @staticmethod
    def _key(account: ServiceAccount) -> str:
        return f"{account.client_email}|{account.key_id}|{account.token_uri}"

    def cached(self, account: ServiceAccount) -> str | None:
        """The current token if it is not due for a refresh (a synchronous look-up)."""
        token = self._tokens.get(self._key(account))
        return token.value if token is not None and time.time() < token.refresh_at else None

    def invalidate(self, account: ServiceAccount, value: str | None = None) -> None:
        """Forget the token (the upstream refused it): the next call fetches a new one."""
        key = self._key(account)
        token = self._tokens.get(key)
        if token is not None and (value is None or token.value == value):
            del self._tokens[key]

    async def token(self, deployment: Deployment, account: ServiceAccount, call_timeout: httpx.Timeout) -> str:
        value = self.cached(account)
        if value is not None:
            return value
        key = self._key(account)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            value = self.cached(account)  # another request refreshed it while this one waited
            if value is None:
                token = await self._fetch(deployment, account, call_timeout)
                self._tokens[key] = token
                value = token.value
        return value

    async def _fetch(self, deployment: Deployment, account: ServiceAccount, call_timeout: httpx.Timeout) -> _Token:
        now = time.time()
        form = urlencode({"grant_type": GRANT_TYPE, "assertion": account.assertion(now)}).encode()
        headers = httpx.Headers({"content-type": "application/x-www-form-urlencoded", "accept": "application/json"})
        upstream = self.client.request(httpx.URL(account.token_uri), headers, form, call_timeout)
        content = await fetch_body(self.client, upstream, deployment, token_refusal)
        try:
            answer = token_decoder.decode(content)
        except msgspec.DecodeError:
            answer = None
        if answer is None or not answer.access_token:
            raise UpstreamError(
                502, "the token endpoint answered without an access token", ErrorType.API, ErrorCode.UPSTREAM_ERROR
            )
        margin = min(REFRESH_MARGIN, answer.expires_in / 4)
        return _Token(answer.access_token, now + answer.expires_in - margin)
