"""The Files and Batch APIs' parts on one edge: the file store, the batch store and the runner,
started once the edge is on the bus and stopped before it leaves it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.batches.file_store import FileStore
from gateway.batches.runner import BatchRunner
from gateway.batches.store import BatchStore
from gateway.errors import GatewayError
from gateway.responses.request import bad_request
from llmgw.contracts import ErrorCode, ErrorType

if TYPE_CHECKING:
    from litestar import Request

    from gateway.auth import Principal
    from gateway.edge import Edge
    from gateway.pipeline import Pipeline


class Batches:
    def __init__(self, edge: Edge, pipeline: Pipeline) -> None:
        self.edge = edge
        self.files = FileStore(edge.subjects)
        self.store = BatchStore(edge.subjects)
        self.runner = BatchRunner(edge, pipeline, self.files, self.store)

    async def start(self) -> None:
        await self.files.start(self.edge.js)
        await self.store.start(self.edge.js)
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()


def batches_of(request: Request) -> Batches:
    return request.app.state.batches


async def caller_of(request: Request) -> Principal:
    edge: Edge = request.app.state.edge
    return await edge.auth.authenticate_fresh(request.headers.get("authorization"), request.headers.get("api-key"))


def not_found(what: str, identifier: str) -> GatewayError:
    return GatewayError(404, f"No {what} found with id '{identifier}'.", ErrorType.INVALID_REQUEST, ErrorCode.NOT_FOUND)


def limit_of(raw: str | None, default: int, most: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise bad_request(f"Invalid 'limit': expected a whole number from 1 to {most}, got {raw!r}.", "limit")
    return int(raw)


def page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """OpenAI's cursor page of `items` (in their order): those after the one of id `after`."""
    if after is not None:
        position = next((i for i, item in enumerate(items) if item["id"] == after), None)
        if position is None:
            raise bad_request(f"Invalid 'after': no object with id '{after}'.", "after")
        items = items[position + 1 :]
    data = items[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(items) > limit,
    }
