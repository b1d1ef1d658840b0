"""Records the edge keeps for its clients for a retention period, each under its id in a JetStream
KV bucket whose TTL is that period: stored responses (gateway/responses/store.py) and stored chat
completions (gateway/stored_chat/store.py).

A record is written the moment its answer is complete, before the answer's last bytes go out
(`keep` starts the write), so a client that asks for it at once finds it; a read on this edge waits
for a write still under way. A record larger than a KV message goes whole into an object store
with the same retention, and the KV record says so (`stored_apart`) and keeps only what `pointer`
leaves of it (the id and its owners). Records are read only by the key, the user or the team that
made them (`owned_by`): to anyone else a record does not exist.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from llmgw.contracts import Caller

log = structlog.get_logger()

SECONDS_PER_DAY = 86400.0
RECORD_MARGIN = 4096  # bytes of a KV message that are not the record (subject, headers)
RECORD_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")  # ids as OpenAI and the gateway make them

_encoder = msgspec.json.Encoder()


class Owned(Protocol):
    """What every kept record carries: its id, its owners, and whether it is stored apart."""

    @property
    def id(self) -> str: ...

    @property
    def key_hash(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...

    @property
    def team_id(self) -> str | None: ...

    @property
    def stored_apart(self) -> bool: ...


R = TypeVar("R", bound=Owned)


def owned_by(record: Owned, caller: Caller) -> bool:
    """Whether `caller` may read the record: the key that made it, or its user, or its team."""
    if record.key_hash == caller.key_hash:
        return True
    if record.user_id is not None and record.user_id == caller.user_id:
        return True
    return record.team_id is not None and record.team_id == caller.team_id


async def open_bucket(js: JetStreamContext, name: str, ttl: float) -> KeyValue:
    """The bucket, made with `ttl` (seconds; 0 = forever), or changed to it when it was made with another."""
    try:
        kv = await js.key_value(name)
    except (BucketNotFoundError, NotFoundError):
        try:
            return await js.create_key_value(KeyValueConfig(bucket=name, history=1, ttl=ttl or None, storage=StorageType.FILE))
        except Exception:  # another edge made it first
            kv = await js.key_value(name)
    stream = f"KV_{name}"
    config = (await js.stream_info(stream)).config
    if float(config.max_age or 0) != float(ttl):
        await js.update_stream(dataclasses.replace(config, max_age=ttl))
    return kv


async def open_large_records(js: JetStreamContext, name: str, ttl: float) -> ObjectStore:
    """The object store of records too large for the KV bucket, with the bucket's retention."""
    try:
        store = await js.object_store(name)
    except (BucketNotFoundError, NotFoundError):
        try:
            return await js.create_object_store(name, ObjectStoreConfig(bucket=name, ttl=ttl or None, storage=StorageType.FILE))
        except Exception:  # another edge made it first
            store = await js.object_store(name)
    stream = f"OBJ_{name}"
    config = (await js.stream_info(stream)).config
    if float(config.max_age or 0) != float(ttl):
        await js.update_stream(dataclasses.replace(config, max_age=ttl))
    return store


class KeptRecords(Generic[R]):
    """One kind of kept record: its bucket, its object store of large records, its writes under way."""

    def __init__(
        self, bucket: str, objects: str, retention_days: int, kind: type[R], pointer: Callable[[R], R], what: str
    ) -> None:
        self.bucket_name = bucket
        self.objects_name = objects
        self.ttl = retention_days * SECONDS_PER_DAY
        self.kv: KeyValue | None = None
        self.large: ObjectStore | None = None
        self.max_record = 0
        self._decoder = msgspec.json.Decoder(kind)
        self._pointer = pointer
        self._what = what  # for log lines: "response", "chat_completion"
        self._writes: dict[str, asyncio.Task[None]] = {}  # record id -> its write under way

    async def start(self, js: JetStreamContext, max_payload: int) -> None:
        self.kv = await open_bucket(js, self.bucket_name, self.ttl)
        self.large = await open_large_records(js, self.objects_name, self.ttl)
        self.max_record = max(max_payload - RECORD_MARGIN, 1024)

    def _bucket(self) -> KeyValue:
        if self.kv is None:
            raise RuntimeError(f"the {self._what} store is not started")
        return self.kv

    def _objects(self) -> ObjectStore:
        if self.large is None:
            raise RuntimeError(f"the {self._what} store is not started")
        return self.large

    # ---- writes ----------------------------------------------------------------------------------

    def keep(self, record: R) -> None:
        """Start writing `record` (a read of its id on this edge waits for the write to end)."""
        if record.id in self._writes or not RECORD_ID.match(record.id):
            return
        task = asyncio.ensure_future(self._write(record))
        self._writes[record.id] = task
        task.add_done_callback(lambda _: self._writes.pop(record.id, None))

    async def _write(self, record: R) -> None:
        try:
            await self.put(record)
        except Exception as exc:
            log.warning(f"{self._what}_store_failed", record_id=record.id, error=str(exc) or type(exc).__name__)

    async def put(self, record: R) -> None:
        """Write `record` (whole in the object store first when too large, then its KV record)."""
        value = _encoder.encode(record)
        if len(value) > self.max_record:
            # The whole record first, then the KV record that points at it: a reader never finds a
            # pointer to nothing.
            await self._objects().put(record.id, value)
            value = _encoder.encode(self._pointer(record))
        await self._bucket().put(record.id, value)

    async def written(self, record_id: str) -> None:
        """Wait until the write of `record_id` started by `keep` is over (if one is under way)."""
        task = self._writes.get(record_id)
        if task is not None:
            await asyncio.shield(task)

    async def delete(self, record_id: str) -> None:
        await self.written(record_id)
        await self._bucket().delete(record_id)
        try:
            await self._objects().delete(record_id)  # where the record was stored apart
        except (ObjectNotFoundError, NotFoundError):
            pass

    # ---- reads -----------------------------------------------------------------------------------

    async def get(self, record_id: str) -> R | None:
        if not RECORD_ID.match(record_id):
            return None
        await self.written(record_id)
        try:
            entry = await self._bucket().get(record_id)
        except (KeyNotFoundError, NotFoundError):
            return None
        if not entry.value:
            return None
        record = self._decoded(record_id, entry.value)
        if record is None or not record.stored_apart:
            return record
        try:
            whole = await self._objects().get(record_id)
        except (ObjectNotFoundError, NotFoundError):
            return None  # expired with the object store's retention a moment before the KV record
        return self._decoded(record_id, whole.data or b"")

    def _decoded(self, record_id: str, value: bytes) -> R | None:
        try:
            return self._decoder.decode(value)
        except msgspec.MsgspecError as exc:
            log.error(f"stored_{self._what}_undecodable", record_id=record_id, error=str(exc))
            return None

    async def find(self, record_id: str, caller: Caller) -> R | None:
        """The caller's record of that id, or None (unknown, expired, deleted, or someone else's)."""
        record = await self.get(record_id)
        return record if record is not None and owned_by(record, caller) else None
