"""Key hashing and credential encryption, both keyed by the server secret (LLMGW_SECRET_KEY).

- Virtual keys are stored only as `HMAC-SHA256(secret, key)`: a leaked KV bucket reveals no key,
  and without the secret no one can test guesses against it.
- Provider credentials set at run time are encrypted with Fernet (AES-128-CBC + HMAC) under a key
  derived from the same secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken

from llmgw.config import ConfigError, Secret

KEY_PREFIX = "sk-"


MIN_SECRET_LENGTH = 16


def server_secret(env: Mapping[str, str], master_key: Secret | None) -> bytes:
    """LLMGW_SECRET_KEY; without it, one derived from the master key (so that one setting suffices).

    With neither there is no secret to key hashes with, and a process refuses to start (ConfigError):
    a constant would let anyone who reads the KV bucket test key guesses. (`llmgw up` generates
    one in its state directory and hands it to its processes.)"""
    raw = env.get("LLMGW_SECRET_KEY")
    if raw:
        if len(raw) < MIN_SECRET_LENGTH:
            raise ConfigError(f"LLMGW_SECRET_KEY: use at least {MIN_SECRET_LENGTH} characters")
        return raw.encode()
    if master_key is None:
        raise ConfigError(
            "no secret to hash virtual keys with: set LLMGW_SECRET_KEY (at least 16 random characters,"
            " the same for every process) or a master key (LLMGW_MASTER_KEY)"
        )
    return hmac.new(b"llmgw-server-secret", master_key.reveal().encode(), hashlib.sha256).digest()


def new_server_secret() -> str:
    """A random LLMGW_SECRET_KEY (what `llmgw up` keeps in its state directory)."""
    return secrets.token_urlsafe(32)


def secret_fingerprint(secret: bytes) -> str:
    """Names a secret without revealing it: an HMAC of a fixed string under it (hex)."""
    return hmac.new(_derive(secret, "fingerprint"), b"llmgw-secret-fingerprint", hashlib.sha256).hexdigest()


def _derive(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key of its own for one purpose, derived from the server's secret."""
    return _derive(secret, purpose)


class KeyHasher:
    def __init__(self, secret: bytes) -> None:
        self._key = _derive(secret, "virtual-key-hash")

    def token(self, key: str) -> str:
        return hmac.new(self._key, key.encode(), hashlib.sha256).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(16)


def key_name(key: str) -> str:
    """`sk-...7sFA`: recognisable, not usable."""
    return f"{KEY_PREFIX}...{key[-4:]}"


def mask(value: str) -> str:
    return f"{value[:3]}...{value[-4:]}" if len(value) > 10 else "***"


class CredentialCipher:
    def __init__(self, secret: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, "provider-credentials")))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str | None:
        """None when the token was made under another secret (or altered)."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            return None
