"""The stored chat completions' own routes (also without `/v1` and under `/openai`), in OpenAI's
shapes: `GET /v1/chat/completions/{id}` (the ChatCompletion), `POST /v1/chat/completions/{id}`
(new metadata), `DELETE /v1/chat/completions/{id}` and `GET /v1/chat/completions/{id}/messages`
(the request's messages). The listing, `GET /v1/chat/completions`, is gateway/stored_chat/listing.py.

A completion is found only by the key, the user or the team that made it; to anyone else (and
once it expired or was deleted) it is a 404, as OpenAI answers for an unknown id.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post

from gateway.edge import Edge
from gateway.errors import GatewayError
from gateway.openai_api import openai_paths
from gateway.paging import bad_request, limit_param, order_param, paged
from llmgw.contracts import ErrorCode, ErrorType, StoredChatCompletion

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
MAX_METADATA = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def _json(value: object) -> Response:
    return Response(content=_encoder.encode(value), media_type="application/json")


async def _stored(request: Request, completion_id: str) -> tuple[Edge, StoredChatCompletion]:
    """The caller's stored completion of that id; a GatewayError (401, 404) otherwise."""
    edge: Edge = request.app.state.edge
    principal = await edge.auth.authenticate_fresh(request.headers.get("authorization"), request.headers.get("api-key"))
    record = await edge.chat_completions.find(completion_id, principal.caller)
    if record is None:
        raise GatewayError(
            404, f"Chat completion with id '{completion_id}' not found.", ErrorType.INVALID_REQUEST, ErrorCode.NOT_FOUND
        )
    return edge, record


def metadata_of(body: bytes) -> dict[str, str]:
    """The `metadata` of an update's body (null clears it); a 400 naming what is wrong."""
    try:
        fields = _decoder.decode(body)
    except msgspec.DecodeError:
        raise bad_request("Invalid JSON body.", None) from None
    if not isinstance(fields, dict) or "metadata" not in fields:
        raise bad_request("Missing required parameter: 'metadata'.", "metadata")
    metadata = fields["metadata"]
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise bad_request("Invalid type for 'metadata': expected an object.", "metadata")
    if len(metadata) > MAX_METADATA:
        raise bad_request(f"Invalid 'metadata': at most {MAX_METADATA} pairs, got {len(metadata)}.", "metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise bad_request(f"Invalid 'metadata': a key is at most {MAX_METADATA_KEY} characters.", f"metadata.{key}")
        if not isinstance(value, str):
            raise bad_request(f"Invalid type for 'metadata.{key}': expected a string.", f"metadata.{key}")
        if len(value) > MAX_METADATA_VALUE:
            raise bad_request(f"Invalid 'metadata.{key}': at most {MAX_METADATA_VALUE} characters.", f"metadata.{key}")
    return metadata


def stored_message(message: dict[str, Any], completion_id: str, index: int) -> dict[str, Any]:
    """A request message as OpenAI lists it (ChatCompletionStoreMessage): an id, the text as
    `content` and, when it came as parts, the parts as `content_parts`."""
    content = message.get("content")
    out: dict[str, Any] = {**message, "id": f"{completion_id}-{index}"}
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        out["content"] = "".join(texts) if texts else None
        out["content_parts"] = content
    else:
        out["content_parts"] = None
    return out


@get(openai_paths("chat/completions/{completion_id:str}"))
async def retrieve_chat_completion(request: Request, completion_id: str) -> Response:
    _, record = await _stored(request, completion_id)
    return _json(record.completion)


@post(openai_paths("chat/completions/{completion_id:str}"), status_code=200)
async def update_chat_completion(request: Request, completion_id: str) -> Response:
    """New metadata for a stored completion (the only thing that can change)."""
    edge, record = await _stored(request, completion_id)
    metadata = metadata_of(await request.body())
    changed = await edge.chat_completions.update(record, metadata)
    return _json(changed.completion)


@delete(openai_paths("chat/completions/{completion_id:str}"), status_code=200)
async def delete_chat_completion(request: Request, completion_id: str) -> Response:
    edge, record = await _stored(request, completion_id)
    await edge.chat_completions.delete(record.id)
    return _json({"object": "chat.completion.deleted", "id": record.id, "deleted": True})


@get(openai_paths("chat/completions/{completion_id:str}/messages"))
async def list_chat_completion_messages(request: Request, completion_id: str) -> Response:
    """The request's messages, a page at a time: `limit`, `order` (oldest first by default) and
    `after` a message id."""
    params = request.query_params
    limit, order, after = limit_param(params.get("limit")), order_param(params.get("order"), "asc"), params.get("after")
    _, record = await _stored(request, completion_id)
    items = [stored_message(m, record.id, i) for i, m in enumerate(record.messages) if isinstance(m, dict)]
    return _json(paged(items, limit, order, after, "message"))


ROUTES = [retrieve_chat_completion, update_chat_completion, delete_chat_completion, list_chat_completion_messages]
