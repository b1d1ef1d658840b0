"""An upstream named by the client: `api_base` / `api_key` in the body, honoured only for a key
whose permissions allow it (`allow_client_side_credentials`).

For every other caller such fields are ignored (and never sent upstream), so a client cannot aim
the gateway at an address of its choosing. An allowed client key travels to the worker encrypted
with the credential cipher: the request waits on a file-backed JetStream stream until a worker
acks it, and a provider key must never sit on disk in the clear.
"""

from __future__ import annotations

import msgspec

from gateway.auth import Principal
from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType
from llmgw.secrets import CredentialCipher


class _ClientUpstream(msgspec.Struct):
    api_base: str | None = None
    base_url: str | None = None
    api_key: str | None = None


_decoder = msgspec.json.Decoder(_ClientUpstream)


def client_upstream(principal: Principal, body: bytes, cipher: CredentialCipher) -> dict[str, str]:
    """The `UpstreamRequest` fields for a client-named upstream (none for most callers)."""
    key = principal.key
    if key is None or not key.permissions.get("allow_client_side_credentials"):
        return {}
    try:
        given = _decoder.decode(body)
    except msgspec.DecodeError:
        return {}
    base = given.api_base or given.base_url
    if base is not None and not base.startswith(("http://", "https://")):
        raise GatewayError(
            400, "`api_base` must be an http(s) URL", ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, "api_base"
        )
    out = {}
    if base:
        out["client_api_base"] = base
    if given.api_key:
        out["client_api_key_sealed"] = cipher.encrypt(given.api_key)
    return out
