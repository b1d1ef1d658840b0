"""Files: their bytes in a JetStream object store, their records (`FileRecord`: size, purpose,
owners) in a KV bucket, both under the file's id. The object is written before the record, so a
record never names bytes that are not there. A file is found only by the key, the user or the
team that made it: to anyone else it does not exist (404)."""

from __future__ import annotations

import re
import secrets
import time

import structlog
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError, NoKeysError, NotFoundError, ObjectNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from llmgw.contracts import Caller, FileRecord, Subjects, decode_file_record, encode_record
from llmgw.kv import open_bucket

log = structlog.get_logger()
ID = re.compile(r"[A-Za-z0-9_-]{1,200}")  # ids as the gateway makes them (and KV keys may hold)


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


def owned(key_hash: str, user_id: str | None, team_id: str | None, caller: Caller) -> bool:
    """Whether `caller` is the key, the user or the team that made a record."""
    if key_hash == caller.key_hash:
        return True
    if user_id is not None and user_id == caller.user_id:
        return True
    return team_id is not None and team_id == caller.team_id


async def open_objects(js: JetStreamContext, name: str) -> ObjectStore:
    try:
        return await js.object_store(name)
    except (BucketNotFoundError, NotFoundError):
        try:
            return await js.create_object_store(name, ObjectStoreConfig(bucket=name, storage=StorageType.FILE))
        except Exception:  # another process made it first
            return await js.object_store(name)


class FileStore:
    def __init__(self, subjects: Subjects) -> None:
        self.subjects = subjects
        self._kv: KeyValue | None = None
        self._objects: ObjectStore | None = None

    async def start(self, js: JetStreamContext) -> None:
        self._kv = await open_bucket(js, self.subjects.files_bucket)
        self._objects = await open_objects(js, self.subjects.files_objects_bucket)

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("the file store is not started")
        return self._kv

    @property
    def objects(self) -> ObjectStore:
        if self._objects is None:
            raise RuntimeError("the file store is not started")
        return self._objects

    async def put(self, record: FileRecord, data: bytes) -> None:
        """Store the bytes, then the record (putting a file of the same id again replaces it)."""
        await self.objects.put(record.id, data)
        await self.kv.put(record.id, encode_record(record))

    async def record(self, file_id: str) -> FileRecord | None:
        if not ID.fullmatch(file_id):
            return None
        try:
            entry = await self.kv.get(file_id)
        except (KeyNotFoundError, KeyDeletedError, NotFoundError):
            return None
        return decode_file_record(entry.value) if entry.value else None

    async def find(self, file_id: str, caller: Caller) -> FileRecord | None:
        """The caller's file of that id, or None (unknown, deleted, or someone else's)."""
        record = await self.record(file_id)
        return record if record is not None and owned(record.key_hash, record.user_id, record.team_id, caller) else None

    async def content(self, file_id: str) -> bytes | None:
        try:
            result = await self.objects.get(file_id)
        except (ObjectNotFoundError, NotFoundError):
            return None
        return result.data or b""

    async def delete(self, file_id: str) -> None:
        """The record first (the file is gone to every reader at once), then its bytes."""
        await self.kv.delete(file_id)
        try:
            await self.objects.delete(file_id)
        except (ObjectNotFoundError, NotFoundError):
            pass

    async def put_object(self, name: str, data: bytes) -> None:
        await self.objects.put(name, data)

    async def delete_object(self, name: str) -> None:
        try:
            await self.objects.delete(name)
        except (ObjectNotFoundError, NotFoundError):
            pass

    async def owned_by(self, caller: Caller) -> list[FileRecord]:
        """The caller's files, newest first."""
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        records = []
        for key in keys:
            record = await self.record(key)
            if record is not None and owned(record.key_hash, record.user_id, record.team_id, caller):
                records.append(record)
        records.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return records


def file_object(record: FileRecord) -> dict:
    """OpenAI's file object."""
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.bytes,
        "created_at": record.created_at,
        "filename": record.filename,
        "purpose": record.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": record.expires_at,
    }


def now() -> int:
    return int(time.time())
