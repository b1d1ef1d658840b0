"""Stored responses: the Responses API's records (`StoredResponse`) in a JetStream KV bucket, kept
for the retention period (`LLMGW_RESPONSES_RETENTION_DAYS`: the bucket's TTL).

A record is written the moment its answer is complete, before the answer's last bytes go out
(`keep` starts the write), so a client that continues the conversation at once finds it; a read on
this edge waits for a write still under way. A record larger than a KV message (a long
conversation turn, a big input) goes whole into an object store with the same retention, and the
KV record says so (`stored_apart`) and keeps only the id and its owners. Records are read only by the key, the user or the team that made them: to anyone
else a response does not exist.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from llmgw.contracts import Caller, StoredResponse, Subjects

log = structlog.get_logger()

SECONDS_PER_DAY = 86400.0
RECORD_MARGIN = 4096  # bytes of a KV message that are not the record (subject, headers)
_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")  # response ids as OpenAI and the gateway make them

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StoredResponse)


def owned_by(record: StoredResponse, caller: Caller) -> bool:
    """Whether `caller` may read the record: the key that made it, or its user, or its team."""
    if record.key_hash == caller.key_hash:
        return True
    if record.user_id is not None and record.user_id == caller.user_id:
        return True
    return record.team_id is not None and record.team_id == caller.team_id


async def open_responses_bucket(js: JetStreamContext, name: str, ttl: float) -> KeyValue:
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


class ResponseStore:
    def __init__(self, subjects: Subjects, retention_days: int) -> None:
        self.bucket_name = subjects.responses_bucket
        self.objects_name = subjects.responses_objects_bucket
        self.large: ObjectStore | None = None
        self.ttl = retention_days * SECONDS_PER_DAY
        self.kv: KeyValue | None = None
        self.max_record = 0
        self._writes: dict[str, asyncio.Task[None]] = {}  # response id -> its write under way

    async def start(self, js: JetStreamContext, max_payload: int) -> None:
        self.kv = await open_responses_bucket(js, self.bucket_name, self.ttl)
        self.large = await open_large_records(js, self.objects_name, self.ttl)
        self.max_record = max(max_payload - RECORD_MARGIN, 1024)

    def _bucket(self) -> KeyValue:
        if self.kv is None:
            raise RuntimeError("the response store is not started")
        return self.kv

    def _objects(self) -> ObjectStore:
        if self.large is None:
            raise RuntimeError("the response store is not started")
        return self.large

    # ---- writes ----------------------------------------------------------------------------------

    def keep(self, record: StoredResponse, replace: bool = False) -> None:
        """Start writing `record` (a read of its id on this edge waits for the write to end);
        `replace`: after the writes of that id already under way (a background response's
        states, in order), otherwise a record whose write is under way is not written again."""
        if not _ID.match(record.id):
            return
        earlier = self._writes.get(record.id)
        if earlier is not None and not replace:
            return
        task = asyncio.ensure_future(self._write(record, earlier))
        self._writes[record.id] = task

        def done(_: asyncio.Task[None]) -> None:
            if self._writes.get(record.id) is task:
                del self._writes[record.id]

        task.add_done_callback(done)

    async def _write(self, record: StoredResponse, earlier: asyncio.Task[None] | None = None) -> None:
        if earlier is not None:
            await asyncio.wait([earlier])  # (it logs its own failure)
        value = _encoder.encode(record)
        try:
            if len(value) > self.max_record:
                # The whole record first, then the KV record that points at it: a reader never
                # finds a pointer to nothing.
                await self._objects().put(record.id, value)
                value = _encoder.encode(_pointer(record))
            await self._bucket().put(record.id, value)
        except Exception as exc:
            log.warning("response_store_failed", response_id=record.id, error=str(exc) or type(exc).__name__)

    async def written(self, response_id: str) -> None:
        """Wait until the write of `response_id` started by `keep` is over (if one is under way)."""
        task = self._writes.get(response_id)
        if task is not None:
            await asyncio.shield(task)

    async def delete(self, response_id: str) -> None:
        await self.written(response_id)
        await self._bucket().delete(response_id)
        try:
            await self._objects().delete(response_id)  # where the record was stored apart
        except (ObjectNotFoundError, NotFoundError):
            pass

    # ---- reads -----------------------------------------------------------------------------------

    async def get(self, response_id: str) -> StoredResponse | None:
        if not _ID.match(response_id):
            return None
        await self.written(response_id)
        try:
            entry = await self._bucket().get(response_id)
        except (KeyNotFoundError, NotFoundError):
            return None
        if not entry.value:
            return None
        record = self._decoded(response_id, entry.value)
        if record is None or not record.stored_apart:
            return record
        try:
            whole = await self._objects().get(response_id)
        except (ObjectNotFoundError, NotFoundError):
            return None  # expired with the object store's retention a moment before the KV record
        return self._decoded(response_id, whole.data or b"")

    @staticmethod
    def _decoded(response_id: str, value: bytes) -> StoredResponse | None:
        try:
            return _decoder.decode(value)
        except msgspec.MsgspecError as exc:
            log.error("stored_response_undecodable", response_id=response_id, error=str(exc))
            return None

    async def find(self, response_id: str, caller: Caller) -> StoredResponse | None:
        """The caller's response of that id, or None (unknown, expired, deleted, or someone else's)."""
        record = await self.get(response_id)
        return record if record is not None and owned_by(record, caller) else None

    async def conversation(self, record: StoredResponse) -> list[StoredResponse] | None:
        """The records of the conversation up to and including `record`, oldest first; None when
        one of the responses before it is no longer stored."""
        earlier = await asyncio.gather(*(self.get(i) for i in record.previous))
        if any(r is None for r in earlier):
            return None
        return [*earlier, record]  # type: ignore[list-item]  # (None excluded above)


def _pointer(record: StoredResponse) -> StoredResponse:
    """The KV record of a record stored apart: its id and owners, for the owner check on reads."""
    return StoredResponse(
        id=record.id,
        key_hash=record.key_hash,
        user_id=record.user_id,
        team_id=record.team_id,
        created_at=record.created_at,
        stored_apart=True,
    )


def new_record(
    response: dict,
    caller: Caller,
    previous: list[str],
    input_items: list[dict],
    created_at: float | None = None,
    **background: object,
) -> StoredResponse:
    """The record of an answered response (`background`: StoredResponse's background fields)."""
    return StoredResponse(
        id=str(response.get("id", "")),
        key_hash=caller.key_hash,
        user_id=caller.user_id,
        team_id=caller.team_id,
        created_at=time.time() if created_at is None else created_at,
        previous=previous,
        input=input_items,
        response=response,
        **background,  # type: ignore[arg-type]
    )
