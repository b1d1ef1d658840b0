"""The background jobs an edge runs for clients that do not wait (a background response, a
resumable chat stream): each one's lease in the jobs bucket (`Subjects.jobs_bucket`), under its
request id, from before its request is published until its end.

The edge running a job renews its lease (a compare-and-set on the record's revision); another
edge finding it lapsed takes it over with what the record holds: the client's request as it came
(its body, which route, whose key), the deployment it was sent to and its times.
"""

from __future__ import annotations

import msgspec


class JobKind:
    RESPONSE = "response"  # POST /v1/responses with `background: true`
    CHAT = "chat"  # a resumable chat completions stream


class BackgroundJob(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A background job's lease and what it takes to carry it on."""

    owner: str  # the edge process running it (its dispatcher's edge id)
    expires_at: float  # epoch seconds; past it, unrenewed, another edge takes the job over
    kind: str  # JobKind
    request_id: str
    client_request_id: str = ""
    key_hash: str  # the caller's key (its token): the job runs as that key
    # The client's body as it came; one too large for a KV record waits in the blobs store under
    # `body_blob` (deleted when the job ends).
    body: bytes = b""
    body_blob: str | None = None
    deployment_id: str  # the deployment its request was sent to first
    received_at: float
    deadline: float
    created_at: float  # the response's `created_at` as its client first read it


encode_job = msgspec.msgpack.Encoder().encode
decode_job = msgspec.msgpack.Decoder(BackgroundJob).decode

__all__ = ["BackgroundJob", "JobKind", "decode_job", "encode_job"]
