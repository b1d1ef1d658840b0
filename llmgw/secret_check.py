"""Is this process's key secret the one the stored keys were made with?

Virtual keys are stored as HMACs under the server secret (llmgw.secrets). A process started with
another secret (LLMGW_SECRET_KEY changed, or the master key it is derived from) would answer 401
to every key; instead the secret's fingerprint is kept in the settings bucket at the first start,
and an edge whose secret has another fingerprint refuses to start, saying why.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from llmgw.config import ConfigError
from llmgw.contracts import SECRET_FINGERPRINT_KEY, Subjects
from llmgw.kv import open_bucket
from llmgw.secrets import secret_fingerprint


class SecretMismatchError(ConfigError):
    """The secret differs from the one the stored keys were made with (a restart cannot fix it)."""


async def check_secret_fingerprint(js: JetStreamContext, subjects: Subjects, secret: bytes) -> None:
    """Store the secret's fingerprint if none is stored yet; raise SecretMismatchError if another is."""
    kv = await open_bucket(js, subjects.settings_bucket)
    mine = secret_fingerprint(secret)
    try:
        stored = (await kv.get(SECRET_FINGERPRINT_KEY)).value
    except KeyNotFoundError:  # (a first start; KeyDeletedError, a reset, is one too)
        try:
            await kv.create(SECRET_FINGERPRINT_KEY, mine.encode())
            return
        except KeyWrongLastSequenceError:  # another process stored one first: compare with it
            stored = (await kv.get(SECRET_FINGERPRINT_KEY)).value
    if (stored or b"").decode(errors="replace") != mine:
        raise SecretMismatchError(
            "the key secret differs from the one the stored keys were made with, so every virtual key would"
            " be refused (401): start with the LLMGW_SECRET_KEY (or, without it, the master key) the keys were"
            f" made with, or delete the key {SECRET_FINGERPRINT_KEY!r} of the bucket {subjects.settings_bucket!r}"
            " to accept this secret (the keys made before must then be generated again)"
        )
