"""End users (LiteLLM's customers): whom a request is for, as its caller says.

A request names its end user in LiteLLM's `x-litellm-end-user-id` header (or the header
`general_settings.user_header_name` names, as LiteLLM's config does), else in OpenAI's `user`
field, LiteLLM's `litellm_metadata.user` or Anthropic's `metadata.user_id` (in that order). The end user is recorded on the request's usage row (`end_user`), its
spend is kept in a ledger of its own, and an end user stored with `/end_user/new` bounds the
request with its budget (max_budget, budget_duration, or its budget object's) and its rpm/tpm
limits, through the same admission as keys. A blocked end user is refused with 400, as LiteLLM
refuses one. An end user nobody stored is attributed and metered all the same, without limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.asgi_io import Scope
from gateway.auth import Principal
from gateway.budget_objects import bounded
from gateway.errors import GatewayError
from gateway.identity import IdentityView
from llmgw.config import ConfigError
from llmgw.contracts import EndUserRecord, ErrorCode, ErrorType

END_USER_HEADER = b"x-litellm-end-user-id"
MAX_END_USER_CHARS = 512


class _UserField(msgspec.Struct):
    user: Any = None
    litellm_metadata: Any = None  # its `user`
    metadata: Any = None  # its `user_id` (Anthropic's Messages API)


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


_user_field = msgspec.json.Decoder(_UserField)


def end_user_headers(general_settings: Mapping[str, Any]) -> tuple[bytes, ...]:
    """The headers that name a request's end user: LiteLLM's, and `user_header_name` if set."""
    named = general_settings.get("user_header_name")
    if named is None:
        return (END_USER_HEADER,)
    if not isinstance(named, str) or not named.strip():
        raise ConfigError(f"general_settings.user_header_name: expected a header name, got {named!r}")
    return tuple(dict.fromkeys((named.strip().lower().encode("latin-1"), END_USER_HEADER)))


def end_user_id(scope: Scope, body: bytes, headers: tuple[bytes, ...] = (END_USER_HEADER,)) -> str | None:
    """The end user a request names: the `x-litellm-end-user-id` header, else the first string of
    its JSON body's `user`, `litellm_metadata.user` and `metadata.user_id`; None when it names none."""
    for wanted in headers:
        for name, value in scope["headers"]:
            if name == wanted and value.strip():
                return _checked(value.decode("latin-1").strip(), wanted.decode("latin-1"))
    if b'"user' not in body:
        return None
    try:
        fields = _user_field.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # not a JSON object (an upload): it names no end user
    for value, param in (
        (fields.user, "user"),
        (_field(fields.litellm_metadata, "user"), "litellm_metadata.user"),
        (_field(fields.metadata, "user_id"), "metadata.user_id"),
    ):
        if isinstance(value, str) and value:
            return _checked(value, param)
    return None


def _checked(end_user: str, param: str) -> str:
    if len(end_user) > MAX_END_USER_CHARS:
        raise GatewayError(
            400,
            f"`{param}` (the end user) is {len(end_user)} characters long; at most {MAX_END_USER_CHARS} are allowed",
            ErrorType.INVALID_REQUEST,
            ErrorCode.INVALID_REQUEST,
            param,
        )
    return end_user


def blocked(end_user: str) -> GatewayError:
    return GatewayError(
        400,
        f"User blocked from making LLM API Calls. User={end_user}",
        ErrorType.INVALID_REQUEST,
        ErrorCode.END_USER_BLOCKED,
        "user",
    )


def attribute(principal: Principal, identity: IdentityView, end_user: str | None) -> Principal:
    """The principal with the request's end user: recorded on its usage row, its stored record
    (bounded by its budget object) counted by admission."""
    if end_user is None:
        return principal
    record = identity.end_user(end_user) or EndUserRecord(user_id=end_user)
    record = bounded(record, identity.budget(record.budget_id))
    caller = msgspec.structs.replace(principal.caller, end_user=end_user)
    return msgspec.structs.replace(principal, caller=caller, end_user=record)


def refuse_blocked(principal: Principal) -> None:
    """400 when the request's end user is blocked."""
    if principal.end_user is not None and principal.end_user.blocked:
        raise blocked(principal.end_user.user_id)
