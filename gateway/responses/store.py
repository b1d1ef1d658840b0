"""Stored responses: the Responses API's records (`StoredResponse`) in a JetStream KV bucket, kept
for the retention period (`LLMGW_RESPONSES_RETENTION_DAYS`: the bucket's TTL).

How records are written, read, stored apart when large and kept to their owners is shared with
stored chat completions (gateway/kept_records.py); what is the Responses API's own is here: a
response names the responses of the conversation it continued (`previous`), rebuilt from their
records.
"""

from __future__ import annotations

import asyncio
import time

from gateway.kept_records import KeptRecords, owned_by
from llmgw.contracts import Caller, StoredResponse, Subjects

__all__ = ["ResponseStore", "new_record", "owned_by"]


class ResponseStore(KeptRecords[StoredResponse]):
    def __init__(self, subjects: Subjects, retention_days: int) -> None:
        super().__init__(
            subjects.responses_bucket, subjects.responses_objects_bucket, retention_days, StoredResponse, _pointer, "response"
        )

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
    response: dict, caller: Caller, previous: list[str], input_items: list[dict], created_at: float | None = None
) -> StoredResponse:
    return StoredResponse(
        id=str(response.get("id", "")),
        key_hash=caller.key_hash,
        user_id=caller.user_id,
        team_id=caller.team_id,
        created_at=time.time() if created_at is None else created_at,
        previous=previous,
        input=input_items,
        response=response,
    )
