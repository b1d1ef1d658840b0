"""Who is calling: the bearer key checked against the master key (virtual keys plug in here)."""

from __future__ import annotations

import hashlib
import hmac

import msgspec

from gateway.errors import GatewayError
from llmgw.config import Secret
from llmgw.contracts import Caller, ErrorCode, ErrorType


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    is_admin: bool = False
    models: tuple[str, ...] = ()  # empty: every model


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(authorization: str | None, api_key_header: str | None = None) -> str:
    """The key from `Authorization: Bearer <key>` (or an `api-key` header, as Azure clients send)."""
    if authorization:
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            return key.strip()
        raise GatewayError(
            401, "Authorization header must be `Bearer <key>`", ErrorType.AUTHENTICATION, ErrorCode.INVALID_API_KEY
        )
    if api_key_header:
        return api_key_header.strip()
    raise GatewayError(
        401,
        "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
        ErrorType.AUTHENTICATION,
        ErrorCode.INVALID_API_KEY,
    )


class Authenticator:
    def __init__(self, master_key: Secret | None) -> None:
        self._master = master_key.reveal().encode() if master_key else None
        self._master_principal = (
            Principal(caller=Caller(key_hash=hash_key(master_key.reveal()), key_alias="master"), is_admin=True)
            if master_key
            else None
        )

    def authenticate(self, authorization: str | None, api_key_header: str | None = None) -> Principal:
        key = bearer_key(authorization, api_key_header)
        if self._master is not None and hmac.compare_digest(key.encode(), self._master):
            return self._master_principal  # type: ignore[return-value]
        raise GatewayError(401, "Invalid API key.", ErrorType.AUTHENTICATION, ErrorCode.INVALID_API_KEY)
