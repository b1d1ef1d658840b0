"""Request bodies too large for one bus message (audio uploads, big prompts), kept in a JetStream
object store while a worker needs them.

The edge puts the body under the request id and publishes the request without it
(`UpstreamRequest.body_blob`); the worker that takes the request reads it, and deletes it once the
request is acked. A body left by a crash expires with the store's TTL.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

BLOB_TTL = 6 * 3600.0  # seconds an orphaned body is kept (longer than any request's deadline)
MESSAGE_MARGIN = 64 * 1024  # bytes of a request message that are not its body (headers, fields)


async def open_blobs(js: JetStreamContext, bucket: str) -> ObjectStore:
    try:
        return await js.object_store(bucket)
    except (BucketNotFoundError, NotFoundError):
        try:
            return await js.create_object_store(bucket, ObjectStoreConfig(bucket=bucket, ttl=BLOB_TTL, storage=StorageType.FILE))
        except Exception:  # another process created it first
            return await js.object_store(bucket)


class Blobs:
    """The blobs store of one process."""

    def __init__(self, store: ObjectStore, max_payload: int) -> None:
        self.store = store
        self.threshold = max(max_payload - MESSAGE_MARGIN, 1024)  # bodies above it travel as blobs

    async def put(self, name: str, data: bytes) -> None:
        await self.store.put(name, data)

    async def get(self, name: str) -> bytes | None:
        """The body, or None when it is gone (deleted after an earlier delivery, or expired)."""
        try:
            result = await self.store.get(name)
        except (ObjectNotFoundError, NotFoundError):
            return None
        return result.data

    async def delete(self, name: str) -> None:
        try:
            await self.store.delete(name)
        except (ObjectNotFoundError, NotFoundError):
            pass
