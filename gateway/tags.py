"""A request's tags, as LiteLLM reads them, for spend by tag; and the keys and teams that require them.

A request is tagged by `metadata.tags` in its JSON body (or a top-level `tags`), by the
`x-litellm-tags` header (comma-separated) and by the `metadata.tags` of its key and of its team
(merged, never replaced). The tags travel with the caller (`Caller.tags`) into the usage event and
the usage row's `tags` column.

A key or a team whose `enforced_params` (gateway/enforced_params.py) name `metadata.tags`
requires every request to carry at least one tag of its own (body or header): one without is
refused, 400 naming `metadata.tags`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from gateway.auth import Principal
from gateway.enforced_params import check_enforced
from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType

TAGS_HEADER = b"x-litellm-tags"
MAX_TAGS = 64
MAX_TAG_CHARS = 256


class _Body(msgspec.Struct):
    metadata: Any = None
    tags: Any = None


_body_decoder = msgspec.json.Decoder(_Body)


def _bad(message: str) -> GatewayError:
    return GatewayError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, "metadata.tags")


def _as_tags(value: Any, where: str) -> list[str]:
    """A tag list as given: a list of strings (a single string is one tag)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise _bad(f"`{where}` must be a list of strings")
    return [t.strip() for t in value if t.strip()]


def body_tags(body: bytes) -> list[str]:
    """The tags of a JSON body (`metadata.tags`, then `tags`); none for a body that is not a JSON object."""
    if b'"tags"' not in body or (body[:1] != b"{" and body.lstrip()[:1] != b"{"):
        return []  # (the substring test spares decoding every body again for the few that tag)
    try:
        parsed = _body_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []  # the route's own parser answers for a body it cannot read
    out: list[str] = []
    if isinstance(parsed.metadata, dict):
        out += _as_tags(parsed.metadata.get("tags"), "metadata.tags")
    out += _as_tags(parsed.tags, "tags")
    return out


def header_tags(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    out: list[str] = []
    for name, value in headers:
        if name.lower() == TAGS_HEADER:
            out += [t.strip() for t in value.decode("latin-1").split(",") if t.strip()]
    return out


def _record_tags(metadata: dict) -> list[str]:
    tags = metadata.get("tags")
    if isinstance(tags, str):
        return [tags]
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def tagged(principal: Principal, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> Principal:
    """The principal with the request's tags on its caller; 400 when they are malformed or too
    many, or when a parameter the key or its team enforces (a tag, say) is missing."""
    from_header = header_tags(headers)
    client = [*body_tags(body), *from_header]
    check_enforced(principal, body, bool(from_header))
    inherited: list[str] = []
    for holder in (principal.key, principal.team):
        if holder is not None:
            inherited += _record_tags(holder.metadata)
    tags = list(dict.fromkeys([*client, *inherited]))
    if not tags:
        return principal
    if len(tags) > MAX_TAGS:
        raise _bad(f"a request may carry at most {MAX_TAGS} tags; got {len(tags)}")
    long = next((t for t in tags if len(t) > MAX_TAG_CHARS), None)
    if long is not None:
        raise _bad(f"a tag may be at most {MAX_TAG_CHARS} characters; got one of {len(long)}")
    caller = msgspec.structs.replace(principal.caller, tags=tags)
    return msgspec.structs.replace(principal, caller=caller)
