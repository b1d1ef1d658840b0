"""Usage events: one per request, JSON (a public contract: any program may subscribe to them).

A worker publishes the events of the requests it finished close together as one `UsageBatch` on
`<prefix>.usage.batch`; the edge publishes each refusal as one `UsageEvent` on
`<prefix>.usage.<provider>.refused` (and older workers published every event that way)."""

from __future__ import annotations

import msgspec

from llmgw.contracts.messages import LedgerRef

# --------------------------------------------------------------------------------------------
# Usage events (public JSON contract)
# --------------------------------------------------------------------------------------------


class UsageStatus:
    SUCCESS = "success"
    UPSTREAM_ERROR = "upstream_error"
    ERROR = "error"
    CANCELLED = "cancelled"  # the client went away
    EXPIRED = "expired"  # nobody was waiting any more when a worker got it
    BUDGET_STOPPED = "budget_stopped"  # a stream stopped where its budget ran out
    REFUSED = "refused"  # the edge refused it after authenticating the caller (400, 403, 404, 413, 429, 503)


class UsageSource:
    PROVIDER = "provider"  # counted by the upstream
    ESTIMATED = "estimated"  # estimated by the gateway (the upstream did not say)
    NONE = "none"  # no tokens were used


class UsageEvent(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    # The `id` of the answer the client got (`chatcmpl-...`, the provider's or the adapter's), so
    # the request is found by it as well; empty when the answer had none (errors, raw streams).
    response_id: str = ""
    # The client's own `x-request-id` (validated at the edge), so it finds its request by it; empty
    # when it sent none. Not unique: `request_id` is what each record is counted once by.
    client_request_id: str = ""
    ts: float  # epoch seconds the edge received the request
    key_hash: str
    key_alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    tags: list[str] = []  # the request's tags (Caller.tags)
    end_user: str | None = None  # the request's `user` field (or `x-litellm-end-user-id` header)
    operation: str
    model_group: str
    deployment_id: str
    provider: str
    upstream_model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    # units other than tokens (messages.Units), for the operations priced by them
    images: int = 0
    audio_seconds: float = 0.0
    characters: int = 0
    search_units: int = 0
    cost: float = 0.0
    cost_known: bool = True
    latency_ms: float
    ttft_ms: float | None = None
    status: str  # UsageStatus.*
    http_status: int
    error_code: str | None = None
    usage_source: str  # UsageSource.*
    stream: bool
    attempt: int = 1  # JetStream delivery of the request (> 1: a worker died and it was redelivered)
    worker_id: str = ""
    upstream_attempts: int = 1  # upstream calls made: retries and fallbacks included
    ledgers: dict[str, LedgerRef] = {}  # copied from the request: where metering settles the cost


class UsageBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Usage events in one message, in the order the worker took them (each still counted once by
    its `request_id`)."""

    events: list[UsageEvent]
    # The `traceparent` of each event's request, by index; empty when no event of the batch is traced.
    traceparents: list[str | None] = []

    def traceparent(self, index: int) -> str | None:
        return self.traceparents[index] if index < len(self.traceparents) else None


decode_usage = msgspec.json.Decoder(UsageEvent).decode
decode_usage_batch = msgspec.json.Decoder(UsageBatch).decode


def decode_usage_message(batched: bool, data: bytes, traceparent: str | None) -> list[tuple[UsageEvent, str | None]]:
    """(event, traceparent) of each event of a usage-stream message: a `UsageBatch` when `batched`
    (it came on `Subjects.usage_batch`), else one `UsageEvent` traced by the message's header.
    Raises msgspec.DecodeError."""
    if not batched:
        return [(decode_usage(data), traceparent)]
    batch = decode_usage_batch(data)
    return [(event, batch.traceparent(i)) for i, event in enumerate(batch.events)]


__all__ = [
    "UsageBatch",
    "UsageEvent",
    "UsageSource",
    "UsageStatus",
    "decode_usage",
    "decode_usage_batch",
    "decode_usage_message",
]
