"""The operator's ceiling on completion length (`LLMGW_MAX_TOKENS_LIMIT`, `LLMGW_MAX_TOKENS_POLICY`).

A client asking for more output tokens than the operator allows is either refused with a 400
naming the field (`refuse`), or has the field lowered to the limit before the request goes upstream
(`clip`). Both `max_tokens` and `max_completion_tokens` (OpenAI's newer name) are checked. A request
that names neither is left alone: the provider's own default applies, as without a limit.

The edge sends the client's own bytes upstream, so a clipped request is re-encoded here; an
untouched one keeps its exact bytes (no re-encoding on the hot path when nothing changes).
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.errors import GatewayError
from gateway.settings import EdgeSettings
from llmgw.contracts import ErrorCode, ErrorType

LIMITED_FIELDS = ("max_tokens", "max_completion_tokens")

_decoder = msgspec.json.Decoder(dict)
_encoder = msgspec.json.Encoder()


def over_limit(parsed: Any, limit: int) -> list[str]:
    """The limited fields the parsed request sets above `limit`, in LIMITED_FIELDS order."""
    return [name for name in LIMITED_FIELDS if (getattr(parsed, name, None) or 0) > limit]


def max_tokens_refused(field: str, asked: int, limit: int) -> GatewayError:
    return GatewayError(
        400,
        f"`{field}` is {asked}, above this gateway's limit of {limit}",
        ErrorType.INVALID_REQUEST,
        ErrorCode.INVALID_REQUEST,
        field,
    )


def clip_body(body: bytes, fields: list[str], limit: int) -> bytes:
    """The JSON body with each of `fields` lowered to `limit` (every other field kept as sent)."""
    data = _decoder.decode(body)
    for name in fields:
        data[name] = limit
    return _encoder.encode(data)


def apply_max_tokens(body: bytes, parsed: Any, settings: EdgeSettings) -> bytes:
    """The body to send upstream under the max-tokens policy; raises GatewayError(400) on `refuse`.

    `parsed` is the validated request (`ChatCompletionRequest`; requests without the limited
    fields, like embeddings, pass through). On `clip` its fields are lowered too, in place, so
    that what the edge reads from it afterwards (the budget reservation) matches what goes upstream.
    """
    limit = settings.max_tokens_limit
    if limit is None:
        return body
    fields = over_limit(parsed, limit)
    if not fields:
        return body
    if settings.max_tokens_policy != "clip":
        raise max_tokens_refused(fields[0], getattr(parsed, fields[0]), limit)
    for name in fields:
        setattr(parsed, name, limit)
    return clip_body(body, fields, limit)
