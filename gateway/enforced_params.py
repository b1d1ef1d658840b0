"""LiteLLM's `enforced_params`: body parameters a key or a team requires on every request.

`/key/generate`, `/key/update`, `/team/new` and `/team/update` take `enforced_params` (a list of
parameter names, a dotted name for a nested one: `user`, `metadata.tags`,
`metadata.generation_name`); it is kept in the record's `metadata.enforced_params`. A request of
that key (or of a key of that team) without one of them is refused, 400 naming the parameter.
`metadata.tags` (or `tags`) is also met by the `x-litellm-tags` header (gateway/tags.py).
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.auth import Principal
from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType

TAG_PARAMS = frozenset({"metadata.tags", "tags"})
MAX_ENFORCED = 32


def enforced(metadata: dict) -> list[str]:
    """The parameters a record's metadata requires."""
    names = metadata.get("enforced_params")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def fold_enforced_params(values: dict[str, Any], current_metadata: dict) -> dict[str, Any]:
    """Admin values with a top-level `enforced_params` moved into `metadata` (the given metadata,
    else the record's current one); 400 when it is not a list of names."""
    if "enforced_params" not in values:
        return values
    out = dict(values)
    names = out.pop("enforced_params")
    if names is not None and (
        not isinstance(names, list) or len(names) > MAX_ENFORCED or not all(isinstance(n, str) and n for n in names)
    ):
        raise GatewayError(
            400,
            f"`enforced_params` must be a list of at most {MAX_ENFORCED} parameter names",
            ErrorType.INVALID_REQUEST,
            ErrorCode.INVALID_REQUEST,
            "enforced_params",
        )
    metadata = dict(out["metadata"] if out.get("metadata") is not None else current_metadata)
    if names:
        metadata["enforced_params"] = list(dict.fromkeys(names))
    else:
        metadata.pop("enforced_params", None)
    out["metadata"] = metadata
    return out


def _present(body: Any, name: str) -> bool:
    value = body
    for part in name.split("."):
        if not isinstance(value, dict) or value.get(part) in (None, "", [], {}):
            return False
        value = value[part]
    return True


def check_enforced(principal: Principal, body: bytes, has_header_tags: bool) -> None:
    """400 naming the first parameter the key or its team requires that the request lacks."""
    required = [
        *(enforced(principal.key.metadata) if principal.key else []),
        *(enforced(principal.team.metadata) if principal.team else []),
    ]
    if not required:
        return
    try:
        parsed: Any = msgspec.json.decode(body) if body.lstrip()[:1] == b"{" else {}
    except msgspec.DecodeError:
        parsed = {}
    for name in dict.fromkeys(required):
        if name in TAG_PARAMS and (has_header_tags or _present(parsed, "metadata.tags") or _present(parsed, "tags")):
            continue
        if not _present(parsed, name):
            hint = " (or the `x-litellm-tags` header)" if name in TAG_PARAMS else ""
            raise GatewayError(
                400,
                f"This key requires `{name}` in every request body{hint}: it is one of the `enforced_params`"
                " of the key or of its team.",
                ErrorType.INVALID_REQUEST,
                ErrorCode.INVALID_REQUEST,
                name,
            )
