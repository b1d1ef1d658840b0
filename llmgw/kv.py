"""JetStream KV buckets and watch-fed in-memory maps of their records.

Readers never read KV per request: each process keeps a map fed by a watch (a put or delete
reaches every watcher in about half a millisecond). An entry is applied only if its revision is
newer than the one held, so an older copy never overwrites a newer one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

log = structlog.get_logger()

T = TypeVar("T")

DELETE_OPERATIONS = ("DEL", "PURGE")


async def open_bucket(js: JetStreamContext, name: str) -> KeyValue:
    try:
        return await js.key_value(name)
    except (BucketNotFoundError, NotFoundError):
        try:
            return await js.create_key_value(KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE))
        except Exception:
            return await js.key_value(name)


class WatchedMap(Generic[T]):
    """An in-memory copy of a bucket (or of the keys under a prefix), kept current by a watch."""

    def __init__(self, kv: KeyValue, decoder: msgspec.json.Decoder, name: str, prefix: str | None = None) -> None:
        self.kv = kv
        self.bucket: str = kv._name
        self.decoder = decoder
        self.name = name
        self.prefix = prefix
        self.items: dict[str, T] = {}
        self.revisions: dict[str, int] = {}  # kept for deleted keys too (tombstones)
        self.deleted: set[str] = set()
        self.listeners: list[Callable[[str, T | None], None]] = []
        self.ready = asyncio.Event()
        self._tick = asyncio.Event()  # set (and replaced) on every applied entry
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        watcher = await self.kv.watch(f"{self.prefix}>" if self.prefix else ">", include_history=False)
        self._task = asyncio.create_task(self._run(watcher), name=f"watch:{self.name}")
        await asyncio.wait_for(self.ready.wait(), timeout=30)

    async def _run(self, watcher: KeyValue.KeyWatcher) -> None:
        while True:
            try:
                entry = await watcher.updates(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("kv_watch_error", bucket=self.name, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if entry is None:
                self.ready.set()  # the initial values have all been delivered
                continue
            self.apply(entry.key, entry.revision, entry.operation, entry.value)

    def apply(self, key: str, revision: int, operation: str | None, value: bytes | None) -> bool:
        """Apply one KV entry if it is newer than what is held; True if it changed the map."""
        if revision <= self.revisions.get(key, 0):
            return False
        self.revisions[key] = revision
        if operation in DELETE_OPERATIONS or not value:
            self.items.pop(key, None)
            self.deleted.add(key)
            record = None
        else:
            try:
                record = self.decoder.decode(value)
            except msgspec.MsgspecError as exc:
                log.error("kv_record_undecodable", bucket=self.name, key=key, error=str(exc))
                return False
            self.items[key] = record
            self.deleted.discard(key)
        for listener in self.listeners:
            listener(key, record)
        self._tick.set()
        self._tick = asyncio.Event()
        return True

    async def caught_up(self, key: str, revision: int, timeout: float = 5.0) -> None:
        """Wait until this map holds `revision` of `key` (read-your-writes after a put/delete)."""
        async with asyncio.timeout(timeout):
            while self.revisions.get(key, 0) < revision:
                await self._tick.wait()

    async def changed(self, key: str, revision: int, timeout: float) -> bool:
        """Wait until this map holds a revision of `key` newer than `revision` (a put or a delete
        after it); False if none came within `timeout` seconds."""
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                while self.revisions.get(key, 0) <= revision:
                    await self._tick.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


async def delete_key(js: JetStreamContext, bucket: str, key: str) -> int:
    """Delete a key (a KV delete marker) and return the marker's revision."""
    ack = await js.publish(f"$KV.{bucket}.{key}", b"", headers={"KV-Operation": "DEL"})
    return ack.seq
