"""Writes of the admin API: compare-and-set on KV, then wait for this edge's own view to hold
the new revision, so a key generated here works here on the very next request."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import msgspec
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError

from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType
from llmgw.kv import WatchedMap, delete_key

if TYPE_CHECKING:
    from gateway.edge import Edge

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
CAS_ATTEMPTS = 10


def not_found(what: str) -> GatewayError:
    return GatewayError(404, f"{what} not found", ErrorType.NOT_FOUND, ErrorCode.NOT_FOUND)


class RecordStore:
    def __init__(self, edge: Edge) -> None:
        self.edge = edge  # its JetStream context exists once the edge has started

    async def create(self, view: WatchedMap[T], key: str, record: T, what: str) -> T:
        try:
            revision = await view.kv.create(key, _encoder.encode(record))
        except KeyWrongLastSequenceError:
            raise GatewayError(400, f"{what} already exists", ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST) from None
        await view.caught_up(key, revision)
        return record

    async def modify(self, view: WatchedMap[T], key: str, change: Callable[[T], T], what: str) -> T:
        """Read, change, compare-and-set; retried when another writer got there first."""
        for _ in range(CAS_ATTEMPTS):
            try:
                entry = await view.kv.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                raise not_found(what) from None
            record = change(view.decoder.decode(entry.value or b""))
            try:
                revision = await view.kv.update(key, _encoder.encode(record), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            await view.caught_up(key, revision)
            return record
        raise GatewayError(409, f"{what} is being changed concurrently; retry", ErrorType.INVALID_REQUEST, "conflict")

    async def delete(self, view: WatchedMap[T], key: str) -> None:
        revision = await delete_key(self.edge.js, view.bucket, key)
        await view.caught_up(key, revision)
