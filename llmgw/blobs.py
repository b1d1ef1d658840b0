"""Request bodies and replies too large for one bus message, kept in a JetStream object store
while the other side needs them.

Requests (audio uploads, big prompts): the edge puts the body under the request id and publishes
the request without it (`UpstreamRequest.body_blob`); the worker that takes the request reads it,
and deletes it once the request is acked.

Replies (embeddings of many inputs, long answers, a huge stream chunk): the worker puts the body
(`Completed.body_blob`) or the chunks (`Chunks.data_blob`) under `reply_blob_name` and publishes
the small reply naming it, before it acks the request; the edge reads the blob before answering,
then deletes it (`Blobs.unpack`). A blob left by a crash (or by an edge that died) expires with the
store's TTL.
"""

from __future__ import annotations

import msgspec
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from llmgw.contracts import (
    Chunks,
    Completed,
    ErrorCode,
    ErrorType,
    Failed,
    ReplyMessage,
    decode_chunk_data,
    encode_chunk_data,
    reply_blob_name,
)

BLOB_TTL = 6 * 3600.0  # seconds an orphaned body is kept (longer than any request's deadline)
MESSAGE_MARGIN = 64 * 1024  # bytes of a bus message that are not its body (headers, fields, framing)


def reply_blob(reply: ReplyMessage) -> str | None:
    """The name of the blob holding a reply's body or chunks; None when the reply came whole."""
    if isinstance(reply, Completed):
        return reply.body_blob
    if isinstance(reply, Chunks):
        return reply.data_blob
    return None


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

    def fits(self, size: int) -> bool:
        """Whether a body (or a stream message's chunks) of `size` bytes fits in one bus message."""
        return size <= self.threshold

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

    # ----------------------------------------------------------------------------------------
    # Replies (worker -> edge)
    # ----------------------------------------------------------------------------------------

    async def pack_completed(self, reply: Completed) -> Completed:
        """Worker: the whole answer as it can be published (its body kept apart if too large)."""
        if self.fits(len(reply.body)):
            return reply
        name = reply_blob_name(reply.request_id, reply.attempt)
        await self.put(name, reply.body)
        return msgspec.structs.replace(reply, body=b"", body_blob=name)

    async def pack_chunks(self, reply: Chunks) -> Chunks:
        """Worker: a stream message as it can be published (its chunks kept apart if too large)."""
        if self.fits(sum(len(chunk) + 5 for chunk in reply.data)):  # (5: msgpack's framing of one chunk, at most)
            return reply
        name = reply_blob_name(reply.request_id, reply.attempt, reply.seq)
        await self.put(name, encode_chunk_data(reply.data))
        return msgspec.structs.replace(reply, data=[], data_blob=name)

    async def unpack(self, reply: ReplyMessage, keep: bool = False) -> ReplyMessage:
        """Edge: the reply whole again (a blob it names read, then deleted unless `keep`: a
        background job's replies may be read again by an edge taking it over); a 502 `Failed`
        carrying the reply's cost and tokens if the blob is gone (the lease still settles them)."""
        if isinstance(reply, Completed) and reply.body_blob is not None:
            body = await self.get(reply.body_blob)
            if body is not None:
                if not keep:
                    await self.delete(reply.body_blob)
                return msgspec.structs.replace(reply, body=body, body_blob=None)
        elif isinstance(reply, Chunks) and reply.data_blob is not None:
            data = await self.get(reply.data_blob)
            if data is not None:
                if not keep:
                    await self.delete(reply.data_blob)
                return msgspec.structs.replace(reply, data=decode_chunk_data(data), data_blob=None)
        else:
            return reply
        return Failed(
            request_id=reply.request_id,
            attempt=reply.attempt,
            cost=reply.cost,
            deployment_id=reply.deployment_id,
            tries=reply.tries,
            tokens=reply.tokens,
            status=502,
            message="the answer was lost on its way through the gateway; retry the request",
            type=ErrorType.API,
            code=ErrorCode.UPSTREAM_ERROR,
        )

    async def discard(self, reply: ReplyMessage) -> None:
        """Edge: a reply nobody will read; the blob it names (if any) is deleted."""
        name = reply_blob(reply)
        if name is not None:
            await self.delete(name)
