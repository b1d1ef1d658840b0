"""The messages that travel on the bus (names: `llmgw.contracts.names`; usage: `.usage`).

Wire formats:
- requests and replies between edge and workers are msgpack (internal; payloads carry raw JSON
  bytes from clients and upstreams without re-escaping them);
- usage events are JSON (a public contract: any program may subscribe to them).
"""

from __future__ import annotations

import msgspec

# --------------------------------------------------------------------------------------------
# Edge -> worker: a request to call an upstream
# --------------------------------------------------------------------------------------------


class Caller(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who made a request: carried to the worker and into the usage event."""

    key_hash: str
    key_alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    # The request's tags (`metadata.tags`, the `x-litellm-tags` header, the key's and team's
    # `metadata.tags`), for spend by tag.
    tags: list[str] = []
    end_user: str | None = None  # whom the request is for: its `user` field (LiteLLM's end user)


class LedgerRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A budget ledger a request counts against (see records.BudgetLedger), as the edge saw it."""

    period: int = 0  # the budget period the request belongs to
    max_budget: float | None = None
    soft_budget: float | None = None


class Operation:
    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    NATIVE = "native"  # a provider's own API, forwarded as is (passthrough routes)
    RESPONSES = "responses"  # OpenAI's Responses API, to a deployment that speaks it
    COMPLETIONS = "completions"  # the legacy text completions API, to a deployment that speaks it
    IMAGES = "images"  # image generation
    TRANSCRIPTION = "transcription"  # speech to text (also its translation to English)
    SPEECH = "speech"  # text to speech
    MODERATION = "moderation"
    RERANK = "rerank"
    COUNT_TOKENS = "count_tokens"


# Operations whose answer length a budget cap can hold (a lower `max_tokens` / `max_output_tokens`,
# a stream stopped where the cap ends); any other request must fit its whole worst case.
CAPPED_OPERATIONS = frozenset({Operation.CHAT, Operation.COMPLETIONS, Operation.RESPONSES})
# Operations that cost nothing whatever they ask (counting tokens): no budget reserves for them.
FREE_OPERATIONS = frozenset({Operation.COUNT_TOKENS})


class Units(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a request used (or may use, at worst) besides tokens, in the units it is priced by
    (llmgw.prices): images by count, size and quality, audio by seconds, speech by characters,
    rerank by search units."""

    images: int = 0
    image_size: str | None = None  # "1024x1024", ...
    image_quality: str | None = None  # "standard", "hd", "low", "medium", "high", ...
    audio_seconds: float = 0.0
    characters: int = 0
    search_units: int = 0


class NativeCall(msgspec.Struct, frozen=True, kw_only=True):
    """A passthrough request in the provider's own wire format: forwarded to the deployment's base
    URL + `path`, with the gateway's credential in place of the client's."""

    method: str
    path: str  # below the provider's base URL, starting with "/", checked by the edge
    query: str = ""  # the raw query string, client credentials removed
    headers: list[tuple[str, str]] = []  # the client headers allowed through (anthropic-version, ...)


class UpstreamRequest(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    reply_to: str
    operation: str  # Operation.*
    model_group: str  # the model name the client asked for
    deployment_id: str  # which configured deployment to call
    body: bytes  # the client's JSON body, validated by the edge
    stream: bool
    include_usage: bool  # the client asked for stream_options.include_usage
    deadline: float  # epoch seconds; past it nobody is waiting
    received_at: float  # epoch seconds the edge received the request
    caller: Caller
    system_prompts: list[str] = []  # policy prompts put before the client's messages, in order
    client_request_id: str = ""  # the client's own valid `x-request-id` (empty: it sent none)
    cost_cap: float | None = None  # USD this request may cost at most (what its budgets could hold)
    answers: int = 1  # completions asked for (`n`, `best_of`, prompts): a capped answer shares the cap
    ledgers: dict[str, LedgerRef] = {}  # budget ledger key -> ref; metering settles the cost there
    native: NativeCall | None = None  # Operation.NATIVE only
    # Router plan: deployments to try, in order, when `deployment_id` fails with a retryable error
    # (429, 5xx, timeout, unreachable) before anything reached the client; `num_retries` more
    # tries of the same deployment come first, with backoff.
    fallbacks: list[str] = []
    context_fallbacks: list[str] = []  # instead, when the prompt is too long for the model
    num_retries: int = 0
    # Upstream URL / credential given in the body by a key allowed to (permissions
    # `allow_client_side_credentials`); otherwise such body fields are dropped. The key is sealed
    # with the credential cipher (llmgw.secrets.CredentialCipher): this message sits in a
    # file-backed stream until a worker acks it.
    client_api_base: str | None = None
    client_api_key_sealed: str | None = None
    # A body too large for one bus message waits in the blobs object store under this name
    # (`body` is then empty); the worker reads it, and it is deleted once the request is acked.
    body_blob: str | None = None
    # The `id` the client's answer carries when the edge writes the answer itself (a Messages or
    # Responses request translated to chat: `msg_...`, `resp_...`): the usage event records it
    # instead of the upstream's. None: the upstream answer's id, as the worker sees it.
    response_id: str | None = None
    # A background job's request (a background response, a resumable chat stream): its replies
    # go to this subject of the job replies stream (`Subjects.job_replies`), each JetStream
    # publish acked before the next, instead of core NATS to `reply_to`: an edge taking the job
    # over from one that died reads them again from the first. None: to `reply_to`.
    reply_stream: str | None = None


# --------------------------------------------------------------------------------------------
# Worker -> edge: replies (a tagged union)
# --------------------------------------------------------------------------------------------


class Reply(msgspec.Struct, frozen=True, kw_only=True, tag_field="t", omit_defaults=True):
    request_id: str
    attempt: int = 1
    cost: float | None = None  # on the last reply of a request: what it cost (USD), for its budgets
    # On the last reply: who answered, after how many upstream calls, and the tokens it used
    # (prompt + completion, for tokens-per-minute limits).
    deployment_id: str | None = None
    tries: int = 1
    tokens: int | None = None


class Chunks(Reply, frozen=True, tag="c"):
    """Stream chunks (each one OpenAI `chat.completion.chunk` JSON), coalesced; `done` ends it."""

    seq: int
    data: list[bytes]
    done: bool = False
    # Chunks too large for one bus message (a huge tool call's arguments, a Responses
    # `response.completed` event carrying the whole output) wait in the blobs object store under
    # this name, as `encode_chunk_data(data)` (`data` is then empty): the edge reads the blob,
    # then deletes it; one the edge never reads expires with the store's TTL.
    data_blob: str | None = None
    # Native streams: `data` is the provider's bytes as they came (not chunk JSON), and the first
    # message carries the upstream's status and headers.
    raw: bool = False
    status: int | None = None
    headers: list[tuple[str, str]] = []


class Completed(Reply, frozen=True, tag="r"):
    """A whole non-streaming answer: the OpenAI-format JSON body (or the provider's own, native)."""

    body: bytes
    status: int = 200
    headers: list[tuple[str, str]] = []  # native answers: the upstream's content-type and the like
    # An answer too large for one bus message (embeddings of many inputs, a long answer) waits in
    # the blobs object store under this name (`body` is then empty): the edge reads it before
    # answering, then deletes it; one the edge never reads expires with the store's TTL.
    body_blob: str | None = None


class Failed(Reply, frozen=True, tag="e"):
    """The request failed; `status` is the HTTP status the client gets."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None


class DeploymentCooldown(msgspec.Struct, frozen=True):
    """A deployment failed too often: routers skip it until `until` (epoch seconds)."""

    deployment_id: str
    until: float
    reason: str = ""


class Cancel(msgspec.Struct, frozen=True):
    """Edge -> workers: the client is gone, stop the upstream call for this request."""

    request_id: str


class ResendReplies(msgspec.Struct, frozen=True):
    """Edge -> workers (core NATS on `Subjects.resend_replies`): this edge reconnected; send again
    the whole answers and failures published to `reply_subject` in the last few seconds (the edge
    takes the first copy of each, and drops one for a request it no longer waits for)."""

    reply_subject: str


class CancelResponse(msgspec.Struct, frozen=True):
    """Edge -> edges (core NATS request on `Subjects.response_cancel`): stop the background response
    of that id; the edge running it answers once it is over, with the response's final status."""

    response_id: str


class ResponseEvent(msgspec.Struct, frozen=True, tag="event"):
    """One event of a background stream as kept in the response events stream: its
    `sequence_number` and the server-sent event as the client reads it."""

    sequence_number: int
    data: bytes


class ResponseStreamEnd(msgspec.Struct, frozen=True, tag="end"):
    """The last entry of a background stream: no event comes after it (`status`: the response's)."""

    status: str


ResponseStreamEntry = ResponseEvent | ResponseStreamEnd

ReplyMessage = Chunks | Completed | Failed


# --------------------------------------------------------------------------------------------
# Worker presence
# --------------------------------------------------------------------------------------------


class WorkerHeartbeat(msgspec.Struct, frozen=True):
    worker_id: str
    providers: list[str]
    in_flight: int
    capacity: int


# --------------------------------------------------------------------------------------------
# Interactive load: what batch work yields to
# --------------------------------------------------------------------------------------------


class InteractiveLoad(msgspec.Struct, frozen=True):
    """An edge's interactive requests of the last second (`arrived`), broadcast every quarter of a
    second while it has some (and once more when it has none any more): batch runners and workers'
    batch pullers slow batch work down while any edge has interactive traffic."""

    source: str  # the edge process's id
    arrived: int  # interactive requests published in the last second


# --------------------------------------------------------------------------------------------
# Metering query service
# --------------------------------------------------------------------------------------------


class NamedQuery:
    """Queries metering owns (metering/named_queries.py), asked for by name with their parameters."""

    # Usage rows, newest first. Parameters: `limit` (1..1000, required); filters, each optional:
    # `key_hash`, `user_id`, `team_id`, `request_id`, `start_date` / `end_date` (YYYY-MM-DD, UTC).
    SPEND_LOGS = "spend_logs"
    # Totals per (group, model): columns group_key, model, requests, spend, prompt_tokens,
    # completion_tokens. Parameters: `group_by` (one of SPEND_REPORT_GROUPS), the date filters.
    SPEND_REPORT = "spend_report"
    # Recent traffic per deployment: columns deployment_id, requests, failures (of the
    # deployment's own making: 401, 403, 408, 429, 5xx), last_ts (epoch s), last_status,
    # last_http_status, last_error_code, last_failed. Parameter: `minutes` (1..1440, how far back).
    DEPLOYMENT_HEALTH = "deployment_health"
    # Spend per request tag (a request with several tags counts for each): columns tag,
    # log_count, total_spend. Parameters: the date filters.
    SPEND_TAGS = "spend_tags"
    # llmgw's metering against the providers' own records, per (provider, model, hour): columns of
    # reconciliation.RECONCILIATION_COLUMNS, one row a line (kind: ok, drift, outside, unbilled).
    # Parameters: `start` / `end` (ISO 8601 UTC hours, end excluded), `threshold` (relative drift
    # above which a line is `drift`), `provider` (optional).
    RECONCILIATION = "reconciliation"
    # Prices in llmgw's table that differ from what the provider charged, per (provider, model,
    # token type, day): columns of reconciliation.STALE_PRICE_COLUMNS. Parameters: `start`, `end`,
    # `threshold`, `provider` as above.
    STALE_PRICES = "stale_prices"


SPEND_REPORT_GROUPS = ("team", "user", "api_key", "model", "customer", "tag")


class QueryRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """Read-only SQL (`llmgw sql`), or a named query (`name`, with `sql` empty)."""

    sql: str = ""
    parameters: dict[str, object] = {}
    name: str | None = None  # a NamedQuery


class QueryResult(msgspec.Struct, frozen=True, omit_defaults=True):
    columns: list[str] = []
    rows: list[list[object]] = []
    error: str | None = None


# --------------------------------------------------------------------------------------------
# Codecs, built once
# --------------------------------------------------------------------------------------------

_msgpack_encoder = msgspec.msgpack.Encoder()
_json_encoder = msgspec.json.Encoder()

_request_decoder = msgspec.msgpack.Decoder(UpstreamRequest)
_reply_decoder = msgspec.msgpack.Decoder(ReplyMessage)
_cancel_decoder = msgspec.msgpack.Decoder(Cancel)
_cancel_response_decoder = msgspec.msgpack.Decoder(CancelResponse)
_resend_replies_decoder = msgspec.msgpack.Decoder(ResendReplies)
_stream_entry_decoder = msgspec.msgpack.Decoder(ResponseStreamEntry)
_cooldown_decoder = msgspec.msgpack.Decoder(DeploymentCooldown)
_heartbeat_decoder = msgspec.msgpack.Decoder(WorkerHeartbeat)
_interactive_load_decoder = msgspec.msgpack.Decoder(InteractiveLoad)
_chunk_data_decoder = msgspec.msgpack.Decoder(list[bytes])
_query_request_decoder = msgspec.json.Decoder(QueryRequest)
_query_result_decoder = msgspec.json.Decoder(QueryResult)

encode_internal = _msgpack_encoder.encode  # requests, replies, cancels, heartbeats, interactive load
encode_json = _json_encoder.encode  # usage events, query service

decode_request = _request_decoder.decode
decode_reply = _reply_decoder.decode
decode_cancel = _cancel_decoder.decode
decode_cancel_response = _cancel_response_decoder.decode
decode_resend_replies = _resend_replies_decoder.decode
decode_stream_entry = _stream_entry_decoder.decode
decode_cooldown = _cooldown_decoder.decode
decode_heartbeat = _heartbeat_decoder.decode
decode_interactive_load = _interactive_load_decoder.decode
encode_chunk_data = _msgpack_encoder.encode  # `Chunks.data` kept as a blob (`Chunks.data_blob`)
decode_chunk_data = _chunk_data_decoder.decode
decode_query_request = _query_request_decoder.decode
decode_query_result = _query_result_decoder.decode

__all__ = [
    "CAPPED_OPERATIONS",
    "FREE_OPERATIONS",
    "SPEND_REPORT_GROUPS",
    "Caller",
    "Cancel",
    "CancelResponse",
    "Chunks",
    "Completed",
    "DeploymentCooldown",
    "Failed",
    "InteractiveLoad",
    "LedgerRef",
    "NamedQuery",
    "NativeCall",
    "Operation",
    "QueryRequest",
    "QueryResult",
    "Reply",
    "ReplyMessage",
    "ResendReplies",
    "ResponseEvent",
    "ResponseStreamEnd",
    "ResponseStreamEntry",
    "Units",
    "UpstreamRequest",
    "WorkerHeartbeat",
    "decode_cancel",
    "decode_cancel_response",
    "decode_chunk_data",
    "decode_cooldown",
    "decode_heartbeat",
    "decode_interactive_load",
    "decode_query_request",
    "decode_query_result",
    "decode_reply",
    "decode_request",
    "decode_resend_replies",
    "decode_stream_entry",
    "encode_chunk_data",
    "encode_internal",
    "encode_json",
]
