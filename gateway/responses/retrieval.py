"""The stored responses' own routes: `GET /v1/responses/{id}` (with `stream=true&starting_after=N`,
a background stream resumed), `POST /v1/responses/{id}/cancel` (a background response stopped),
`GET /v1/responses/{id}/input_items` and `DELETE /v1/responses/{id}` (also without `/v1` and under
`/openai`), in OpenAI's shapes.

A response is found only by the key, the user or the team that made it; to anyone else (and once
it expired or was deleted) it is a 404, as OpenAI answers for an unknown id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.response import Stream

from gateway.edge import Edge
from gateway.errors import GatewayError
from gateway.openai_api import openai_paths
from gateway.paging import limit_param, order_param, paged
from gateway.responses.background import ORPHANED_AFTER, TERMINAL, as_seen
from gateway.responses.items import listed_conversation, listed_item
from gateway.responses.request import bad_request
from llmgw.contracts import ErrorCode, ErrorType, StoredResponse

_encoder = msgspec.json.Encoder()
CANCEL_WAIT = 3.0  # seconds the edge running a background response has to stop it and answer
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _json(value: object) -> Response:
    return Response(content=_encoder.encode(value), media_type="application/json")


async def _stored(request: Request, response_id: str) -> tuple[Edge, StoredResponse]:
    """The caller's stored response of that id; a GatewayError (401, 404) otherwise."""
    edge: Edge = request.app.state.edge
    principal = await edge.auth.authenticate_fresh(request.headers.get("authorization"), request.headers.get("api-key"))
    record = await edge.responses.find(response_id, principal.caller)
    if record is None or record.response.get("object", "response") != "response":  # (a resumable chat stream's)
        raise GatewayError(404, f"Response with id '{response_id}' not found.", ErrorType.INVALID_REQUEST, ErrorCode.NOT_FOUND)
    return edge, record


def _after(raw: str | None) -> int:
    if raw is None:
        return -1
    if not raw.lstrip("-").isdigit():
        raise bad_request(f"Invalid 'starting_after': expected a whole number, got {raw!r}.", "starting_after")
    return int(raw)


def _flag(raw: str | None, name: str) -> bool:
    if raw is None or raw.lower() in ("false", "0"):
        return False
    if raw.lower() in ("true", "1"):
        return True
    raise bad_request(f"Invalid '{name}': expected true or false, got {raw!r}.", name)


@get(openai_paths("responses/{response_id:str}"))
async def retrieve_response(request: Request, response_id: str) -> Response | Stream:
    """The stored response (a background one as it is now); `stream=true` (a background response
    created with `stream: true`): its events after `starting_after`, then the live rest."""
    params = request.query_params
    streamed, after = _flag(params.get("stream"), "stream"), _after(params.get("starting_after"))
    edge, record = await _stored(request, response_id)
    response = as_seen(record.response, record.deadline)
    if not streamed:
        return _json(response)
    if not record.streamed:
        raise bad_request(
            "This response was not created with `background: true` and `stream: true`: it has no events to stream.", "stream"
        )
    # A response over (or left by its edge) has all its events stored already.
    until = record.deadline + ORPHANED_AFTER if record.deadline is not None and response.get("status") not in TERMINAL else 0.0

    async def events() -> AsyncIterator[bytes]:
        async with aclosing(edge.response_events.read(record.id, after, until)) as entries:
            async for event in entries:
                yield event.data

    return Stream(events(), media_type="text/event-stream; charset=utf-8", headers=STREAM_HEADERS)


@post(openai_paths("responses/{response_id:str}/cancel"), status_code=200)
async def cancel_response(request: Request, response_id: str) -> Response:
    """Stop a background response (the upstream call too: its usage so far is metered) and answer
    it as it ended; one over already is answered as it is."""
    edge, record = await _stored(request, response_id)
    if record.request_id is None:
        raise bad_request("Only responses created with `background: true` can be cancelled.", None)
    if as_seen(record.response, record.deadline).get("status") not in TERMINAL:
        if not await edge.jobs.cancel_anywhere(record.id, CANCEL_WAIT):
            # No edge runs it (the one that did stopped, or it ended a moment ago).
            found = await edge.responses.get(record.id)
            if found is not None and found.response.get("status") not in TERMINAL:
                await edge.dispatcher.cancel(record.request_id)  # a worker may still be serving it
                await edge.job_leases.drop(record.request_id)  # and no edge is to carry it on
                cancelled = {**found.response, "status": "cancelled"}
                edge.responses.keep(msgspec.structs.replace(found, response=cancelled), replace=True)
        found = await edge.responses.get(record.id)
        record = found if found is not None else record
    return _json(as_seen(record.response, record.deadline))


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


ROUTES = [retrieve_response, cancel_response, list_input_items, delete_response]
