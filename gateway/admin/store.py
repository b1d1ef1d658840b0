"""Writes of the admin API: compare-and-set on KV, then wait for this edge's own view to hold
the new revision, so a key generated here works here on the very next request."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import msgspec
import structlog
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError

from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType
from llmgw.kv import WatchedMap, delete_key

if TYPE_CHECKING:
    from gateway.edge import Edge

T = TypeVar("T")
log = structlog.get_logger()

_encoder = msgspec.json.Encoder()
CAS_ATTEMPTS = 25  # many admin calls changing one record at once each get through


def not_found(what: str) -> GatewayError:
    return GatewayError(404, f"{what} not found", ErrorType.NOT_FOUND, ErrorCode.NOT_FOUND)


async def _seen(view: WatchedMap[T], key: str, revision: int) -> None:
    """Wait for this edge's copy to hold the write (read-your-writes). The write is stored
    whatever happens here: a copy still behind after the wait (its watch resuming after a NATS
    node was lost) is logged, and the call answers as written rather than as failed, which a
    client would retry into a second record."""
    try:
        await view.caught_up(key, revision)
    except TimeoutError:
        log.warning("kv_copy_behind", bucket=view.bucket, key=key, revision=revision)


class _Turns:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class RecordStore:
    def __init__(self, edge: Edge) -> None:
        self.edge = edge  # its JetStream context exists once the edge has started
        self._writing: dict[tuple[str, str], _Turns] = {}

    async def create(self, view: WatchedMap[T], key: str, record: T, what: str) -> T:
        try:
            revision = await view.kv.create(key, _encoder.encode(record))
        except KeyWrongLastSequenceError:
            raise GatewayError(400, f"{what} already exists", ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST) from None
        await _seen(view, key, revision)
        return record

    async def modify(self, view: WatchedMap[T], key: str, change: Callable[[T], T], what: str) -> T:
        """Read, change, compare-and-set; retried when another writer got there first."""

        def existing(record: T | None) -> T:
            if record is None:
                raise not_found(what)
            return change(record)

        return await self.upsert(view, key, existing, what)

    async def upsert(self, view: WatchedMap[T], key: str, change: Callable[[T | None], T], what: str) -> T:
        """Create-or-change by compare-and-set: `change` gets the stored record (None when there is
        none) and returns the new one; retried when another writer got there first, so concurrent
        calls naming one new record all succeed and one record exists. A record `change` returns
        as it was is not written again."""
        # One writer per record in this process at a time: a hundred calls changing one record
        # take turns here instead of racing each other through compare-and-set rounds (writers
        # in other processes still meet them at the compare-and-set).
        turns = self._writing.get((view.bucket, key))
        if turns is None:
            turns = self._writing[(view.bucket, key)] = _Turns()
        turns.users += 1
        try:
            async with turns.lock:
                return await self._upsert(view, key, change, what)
        finally:
            turns.users -= 1
            if not turns.users:
                del self._writing[(view.bucket, key)]

    async def _upsert(self, view: WatchedMap[T], key: str, change: Callable[[T | None], T], what: str) -> T:
        for attempt in range(CAS_ATTEMPTS):
            try:
                entry = await view.kv.get(key)
                current: T | None = view.decoder.decode(entry.value or b"")
                last = entry.revision
            except (KeyNotFoundError, KeyDeletedError):
                current, last = None, None
            record = change(current)
            if current is not None and record == current:
                await _seen(view, key, last or 0)
                return record
            try:
                if last is None:
                    revision = await view.kv.create(key, _encoder.encode(record))
                else:
                    revision = await view.kv.update(key, _encoder.encode(record), last=last)
            except KeyWrongLastSequenceError:
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            await _seen(view, key, revision)
            return record
        raise GatewayError(409, f"{what} is being changed concurrently; retry", ErrorType.INVALID_REQUEST, "conflict")

    async def delete(self, view: WatchedMap[T], key: str) -> None:
        revision = await delete_key(self.edge.js, view.bucket, key)
        await _seen(view, key, revision)
