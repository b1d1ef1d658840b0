"""`GET /v1/chat/completions`: the caller's stored chat completions, a page at a time, in OpenAI's
list shape. The path is the chat route's (a raw ASGI route, which hands a GET here), so this is
written in ASGI too.

Parameters (OpenAI's): `after` (a completion id), `limit` (1 to 100, 20 by default), `order` (by
creation time, `asc` by default), `metadata[key]=value` (each pair must match) and `model` (the
model asked for, or the one the completion names).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import msgspec

from gateway.asgi_io import Scope, Send, request_headers, send_json
from gateway.edge import Edge
from gateway.paging import bad_request, limit_param, list_object, order_param
from gateway.stored_chat.store import Listing

_encoder = msgspec.json.Encoder()


def listing_of(query: bytes) -> Listing:
    """The listing a query string asks for; a 400 naming a bad parameter."""
    single: dict[str, str] = {}
    metadata: dict[str, str] = {}
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name.startswith("metadata[") and name.endswith("]") and len(name) > len("metadata[]"):
            metadata[name[len("metadata[") : -1]] = value
        else:
            single[name] = value
    after = single.get("after")
    if after == "":
        raise bad_request("Invalid 'after': expected a chat completion id.", "after")
    return Listing(
        after=after,
        limit=limit_param(single.get("limit")),
        order=order_param(single.get("order"), "asc"),
        metadata=metadata,
        model=single.get("model") or None,
    )


async def list_stored(scope: Scope, send: Send) -> None:
    edge: Edge = scope["app"].state.edge
    authorization, api_key, _ = request_headers(scope)
    listing = listing_of(scope.get("query_string", b""))
    principal = await edge.auth.authenticate_fresh(authorization, api_key)
    found = await edge.chat_completions.listed(principal.caller, listing)
    if found is None:
        raise bad_request(f"Invalid 'after': no chat completion with id '{listing.after}'.", "after")
    page, has_more = found
    body = _encoder.encode(list_object([r.completion for r in page], has_more))
    await send_json(send, 200, body, [])
