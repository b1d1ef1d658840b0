"""The stored responses' own routes: `GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`
and `DELETE /v1/responses/{id}` (also without `/v1` and under `/openai`), in OpenAI's shapes.

A response is found only by the key, the user or the team that made it; to anyone else (and once
it expired or was deleted) it is a 404, as OpenAI answers for an unknown id.
"""

from __future__ import annotations

import msgspec
from litestar import Request, Response, delete, get

from gateway.edge import Edge
from gateway.errors import GatewayError
from gateway.openai_api import openai_paths
from gateway.paging import limit_param, order_param, paged
from gateway.responses.items import listed_conversation, listed_item
from llmgw.contracts import ErrorCode, ErrorType, StoredResponse

_encoder = msgspec.json.Encoder()


def _json(value: object) -> Response:
    return Response(content=_encoder.encode(value), media_type="application/json")


async def _stored(request: Request, response_id: str) -> tuple[Edge, StoredResponse]:
    """The caller's stored response of that id; a GatewayError (401, 404) otherwise."""
    edge: Edge = request.app.state.edge
    principal = await edge.auth.authenticate_fresh(request.headers.get("authorization"), request.headers.get("api-key"))
    record = await edge.responses.find(response_id, principal.caller)
    if record is None:
        raise GatewayError(404, f"Response with id '{response_id}' not found.", ErrorType.INVALID_REQUEST, ErrorCode.NOT_FOUND)
    return edge, record


@get(openai_paths("responses/{response_id:str}"))
async def retrieve_response(request: Request, response_id: str) -> Response:
    _, record = await _stored(request, response_id)
    return _json(record.response)


@get(openai_paths("responses/{response_id:str}/input_items"))
async def list_input_items(request: Request, response_id: str) -> Response:
    """The items the response was generated from (the conversation it continued, then its own
    input), a page at a time: `limit`, `order` (newest first by default) and `after` an item id."""
    params = request.query_params
    limit, order, after = limit_param(params.get("limit")), order_param(params.get("order"), "desc"), params.get("after")
    edge, record = await _stored(request, response_id)
    records = await edge.responses.conversation(record)
    if records is not None:
        items = listed_conversation(records)
    else:  # the responses before it expired: what it was given itself
        items = [listed_item(item, record.id, i) for i, item in enumerate(record.input)]
    return _json(paged(items, limit, order, after, "input item"))


@delete(openai_paths("responses/{response_id:str}"), status_code=200)
async def delete_response(request: Request, response_id: str) -> Response:
    edge, record = await _stored(request, response_id)
    await edge.responses.delete(record.id)
    return _json({"id": record.id, "object": "response", "deleted": True})


ROUTES = [retrieve_response, list_input_items, delete_response]
