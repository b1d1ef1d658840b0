"""The records the edge keeps for its clients, each under its id, for a retention period: the
Responses API's stored responses and stored chat completions (`store: true`), with the index keys
by which a caller's own chat completions are listed."""

from __future__ import annotations

from typing import Any

import msgspec

from llmgw.contracts.records import kv_key

# --------------------------------------------------------------------------------------------
# Stored responses of the Responses API (bucket Subjects.responses_bucket)
# --------------------------------------------------------------------------------------------


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A response of the Responses API as the edge keeps it for the retention period, under its id.

    Only its own input items are kept (each with an id); the responses it continued are named in
    `previous` (oldest first), so a conversation is rebuilt from its records, each one small. Only
    the key, the user or the team that made it may read it (`key_hash`, `user_id`, `team_id`)."""

    id: str  # the response's id (`resp_...`), its key in the bucket
    key_hash: str
    user_id: str | None = None
    team_id: str | None = None
    created_at: float = 0.0
    previous: list[str] = []  # ids of the responses before it in its conversation, oldest first
    input: list[dict[str, Any]] = []  # the input items of this request (not those of `previous`)
    response: dict[str, Any] = {}  # the response object as the client received it
    # The whole record is in the responses object store (larger than a KV message); this one in
    # the KV bucket keeps only the id and the owners.
    stored_apart: bool = False


# --------------------------------------------------------------------------------------------
# Stored chat completions (`store: true`; bucket Subjects.chat_completions_bucket)
# --------------------------------------------------------------------------------------------


class StoredChatCompletion(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A chat completion the client asked to keep (`store: true`), under its id, for the retention
    period: the request's messages, the completion as the client received it (a stream's chunks
    put together), the model asked for and the metadata (changed by `POST .../{id}`). Only the key,
    the user or the team that made it may read it (`key_hash`, `user_id`, `team_id`).

    Next to it the bucket holds one index key per owner (`chat_owner_key`), so a listing reads
    only its caller's."""

    id: str  # the completion's id (`chatcmpl-...`), its key in the bucket
    key_hash: str
    user_id: str | None = None
    team_id: str | None = None
    created_at: float = 0.0
    model: str = ""  # the model the client asked for (the completion names the upstream's)
    metadata: dict[str, str] = {}
    messages: list[dict[str, Any]] = []  # the request's messages
    completion: dict[str, Any] = {}  # the ChatCompletion object
    # The whole record is in the chat completions object store (larger than a KV message); this
    # one keeps only the id, the owners, the time, the model and the metadata.
    stored_apart: bool = False


CHAT_OWNER_PREFIX = "own."  # index keys of the chat completions bucket: own.<k|u|t>.<owner>.<ms>.<id>


def chat_owner_keys(record: StoredChatCompletion) -> list[str]:
    """The index keys of a stored chat completion: one for its key, its user and its team each."""
    tail = f"{int(record.created_at * 1000):015d}.{record.id}"
    return [f"{prefix}.{tail}" for prefix in chat_owner_prefixes(record.key_hash, record.user_id, record.team_id)]


def chat_owner_prefixes(key_hash: str, user_id: str | None, team_id: str | None) -> list[str]:
    """The index key prefixes (without the final dot) of what a caller owns: its key, its user, its team."""
    prefixes = [f"{CHAT_OWNER_PREFIX}k.{kv_key(key_hash)}"]
    if user_id is not None:
        prefixes.append(f"{CHAT_OWNER_PREFIX}u.{kv_key(user_id)}")
    if team_id is not None:
        prefixes.append(f"{CHAT_OWNER_PREFIX}t.{kv_key(team_id)}")
    return prefixes


def parse_chat_owner_key(key: str) -> tuple[int, str] | None:
    """(created, in ms; completion id) of an index key; None for any other key."""
    parts = key.split(".", 4)
    if len(parts) != 5 or not parts[3].isdigit() or f"{parts[0]}." != CHAT_OWNER_PREFIX:
        return None
    return int(parts[3]), parts[4]


__all__ = [
    "CHAT_OWNER_PREFIX",
    "StoredChatCompletion",
    "StoredResponse",
    "chat_owner_keys",
    "chat_owner_prefixes",
    "parse_chat_owner_key",
]
