"""Stored chat completions (`store: true`): `StoredChatCompletion` records in a JetStream KV bucket
kept for the retention period of stored responses (`LLMGW_RESPONSES_RETENTION_DAYS`).

Writing, reading, storing large records apart and keeping records to their owners are shared with
stored responses (gateway/kept_records.py). What is chat's own: an id is never written over (a
record is created: the gateway's ids are unique, gateway/stored_chat/keeping.py, so this only
guards against a bug), each
record has an index key per owner next to it (its key, its user, its team: `chat_owner_keys`),
so a listing reads the caller's own and no one else's, and the metadata can be changed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import structlog
from nats.js.errors import KeyWrongLastSequenceError

from gateway.kept_records import KeptRecords, owned_by
from llmgw.contracts import (
    Caller,
    StoredChatCompletion,
    Subjects,
    chat_owner_keys,
    chat_owner_prefixes,
    parse_chat_owner_key,
)

log = structlog.get_logger()
INDEX_VALUE = b"1"


class Listing(msgspec.Struct, frozen=True, kw_only=True):
    """What a listing asks for (OpenAI's `GET /v1/chat/completions` parameters)."""

    after: str | None = None
    limit: int = 20
    order: str = "asc"  # by creation time
    metadata: dict[str, str] = {}  # each pair must be in the completion's metadata
    model: str | None = None  # the model asked for, or the one the completion names


def matches(record: StoredChatCompletion, listing: Listing) -> bool:
    """Whether a record is one the listing asks for (its metadata and model filters)."""
    if any(record.metadata.get(k) != v for k, v in listing.metadata.items()):
        return False
    return listing.model is None or listing.model in (record.model, record.completion.get("model"))


def ordered(found: dict[str, int], order: str, after: str | None) -> list[str] | None:
    """The ids (id -> created ms) in the listing's order, from just after `after`; None when
    `after` is not among them."""
    ids = sorted(found, key=lambda i: (found[i], i), reverse=order == "desc")
    if after is None:
        return ids
    if after not in found:
        return None
    return ids[ids.index(after) + 1 :]


def with_metadata(record: StoredChatCompletion, metadata: dict[str, str]) -> StoredChatCompletion:
    """The record with new metadata, in the record and in the completion it serves."""
    completion = {**record.completion, "metadata": metadata}
    return msgspec.structs.replace(record, metadata=metadata, completion=completion)


class ChatCompletionStore(KeptRecords[StoredChatCompletion]):
    def __init__(self, subjects: Subjects, retention_days: int) -> None:
        super().__init__(
            subjects.chat_completions_bucket,
            subjects.chat_completions_objects_bucket,
            retention_days,
            StoredChatCompletion,
            _pointer,
            "chat_completion",
        )

    async def _write(self, record: StoredChatCompletion) -> None:
        try:
            await self._bucket().create(record.id, b"")  # the id is this record's, or it is not stored
        except KeyWrongLastSequenceError:
            log.warning("chat_completion_id_taken", record_id=record.id)
            return
        except Exception as exc:
            log.warning("chat_completion_store_failed", record_id=record.id, error=str(exc) or type(exc).__name__)
            return
        await super()._write(record)

    async def put(self, record: StoredChatCompletion) -> None:
        await super().put(record)
        bucket = self._bucket()
        await asyncio.gather(*(bucket.put(key, INDEX_VALUE) for key in chat_owner_keys(record)))

    async def delete(self, record_id: str) -> None:
        record = await self.get(record_id)
        await super().delete(record_id)
        if record is not None:
            bucket = self._bucket()
            await asyncio.gather(*(bucket.delete(key) for key in chat_owner_keys(record)))

    async def update(self, record: StoredChatCompletion, metadata: dict[str, str]) -> StoredChatCompletion:
        """Change a record's metadata (its retention starts again)."""
        await self.written(record.id)
        changed = with_metadata(record, metadata)
        await self.put(changed)
        return changed

    async def owned(self, caller: Caller) -> dict[str, int]:
        """The ids of the caller's stored completions (its key's, its user's, its team's) -> created (ms)."""
        found: dict[str, int] = {}
        for prefix in chat_owner_prefixes(caller.key_hash, caller.user_id, caller.team_id):
            watcher = await self._bucket().watch(f"{prefix}.>", ignore_deletes=True, meta_only=True)
            try:
                async for entry in watcher:
                    if entry is None:
                        break
                    parsed = parse_chat_owner_key(entry.key)
                    if parsed is not None:
                        found[parsed[1]] = parsed[0]
            finally:
                await watcher.stop()
        return found

    async def listed(self, caller: Caller, listing: Listing) -> tuple[list[StoredChatCompletion], bool] | None:
        """A page of the caller's stored completions and whether more follow; None when
        `listing.after` is none of the caller's."""
        ids = ordered(await self.owned(caller), listing.order, listing.after)
        if ids is None:
            return None
        page: list[StoredChatCompletion] = []
        batch = max(listing.limit, 20)
        for start in range(0, len(ids), batch):
            records = await asyncio.gather(*(self.get(i) for i in ids[start : start + batch]))
            for record in records:
                if record is None or not owned_by(record, caller) or not matches(record, listing):
                    continue
                if len(page) == listing.limit:
                    return page, True
                page.append(record)
        return page, False


def _pointer(record: StoredChatCompletion) -> StoredChatCompletion:
    """The KV record of a record stored apart: what the owner check and the index keys need."""
    return StoredChatCompletion(
        id=record.id,
        key_hash=record.key_hash,
        user_id=record.user_id,
        team_id=record.team_id,
        created_at=record.created_at,
        model=record.model,
        metadata=record.metadata,
        stored_apart=True,
    )


def string_metadata(metadata: Any) -> dict[str, str]:
    """The request's metadata as OpenAI keeps it: its string values (the gateway's own
    `metadata.tags`, a list, is not one)."""
    if not isinstance(metadata, dict):
        return {}
    return {str(k): v for k, v in metadata.items() if isinstance(v, str)}


def new_record(
    completion: dict[str, Any],
    caller: Caller,
    model: str,
    messages: list[dict[str, Any]],
    metadata: dict[str, str],
    created_at: float | None = None,
) -> StoredChatCompletion:
    completion = {**completion, "metadata": metadata}
    return StoredChatCompletion(
        id=str(completion.get("id", "")),
        key_hash=caller.key_hash,
        user_id=caller.user_id,
        team_id=caller.team_id,
        created_at=time.time() if created_at is None else created_at,
        model=model,
        metadata=metadata,
        messages=messages,
        completion=completion,
    )
