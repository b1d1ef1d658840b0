"""Names on the bus: subjects, streams, consumers and buckets, queue priorities, error codes.

Every name derives from one prefix (`llmgw` by default; tests use a unique prefix each).
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Error codes (OpenAI-style `error.code` / `error.type` values the gateway emits)
# --------------------------------------------------------------------------------------------


class ErrorCode:
    INVALID_REQUEST = "invalid_request_error"
    INVALID_API_KEY = "invalid_api_key"
    MODEL_NOT_FOUND = "model_not_found"
    PERMISSION_DENIED = "permission_denied"
    RATE_LIMITED = "rate_limit_exceeded"
    BUDGET_EXCEEDED = "budget_exceeded"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_UNREACHABLE = "upstream_unreachable"
    TIMEOUT = "timeout"
    UNAVAILABLE = "service_unavailable"
    INTERNAL = "internal_error"
    NOT_FOUND = "not_found"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    # The Responses API: a value the chosen model cannot take (an item or tool type its
    # provider has no equivalent for), and a `previous_response_id` the caller has no response of.
    UNSUPPORTED_VALUE = "unsupported_value"
    PREVIOUS_RESPONSE_NOT_FOUND = "previous_response_not_found"
    # A caller with a budget asked for a model that has no price (nothing to reserve against).
    MODEL_PRICE_UNKNOWN = "model_price_unknown"
    # The request's end user (its `user` field) was blocked with /end_user/block.
    END_USER_BLOCKED = "end_user_blocked"


class ErrorType:
    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    PERMISSION = "permission_error"
    NOT_FOUND = "not_found_error"
    RATE_LIMIT = "rate_limit_error"
    API = "api_error"
    TIMEOUT = "timeout_error"
    UNAVAILABLE = "service_unavailable_error"


# --------------------------------------------------------------------------------------------
# Subjects, streams and consumers
# --------------------------------------------------------------------------------------------


class Priority:
    INTERACTIVE = "interactive"
    BATCH = "batch"


class Subjects:
    """All names on the bus, derived from one prefix (tests use a unique prefix each)."""

    __slots__ = ("_stream_prefix", "prefix")

    def __init__(self, prefix: str = "llmgw") -> None:
        if not prefix or any(c in prefix for c in ". *>"):
            raise ValueError(f"bus prefix must be one subject token, got {prefix!r}")
        self.prefix = prefix
        self._stream_prefix = prefix.upper().replace("-", "_")

    # Requests: a JetStream work-queue stream, one subject (and one consumer) per provider.
    @property
    def requests_stream(self) -> str:
        return f"{self._stream_prefix}_REQUESTS"

    @property
    def requests_wildcard(self) -> str:
        return f"{self.prefix}.req.>"

    def request(self, provider: str, priority: str = "interactive") -> str:
        """Interactive requests (the default) and batch requests wait in separate queues; workers
        take batch requests only when no interactive one is waiting (Priority)."""
        if priority == Priority.BATCH:
            return f"{self.prefix}.req.{provider}.batch"
        return f"{self.prefix}.req.{provider}"

    def worker_consumer(self, provider: str, priority: str = "interactive") -> str:
        if priority == Priority.BATCH:
            return f"{self.prefix}-workers-{provider}-batch"
        return f"{self.prefix}-workers-{provider}"

    # Router: a deployment put in (or out of) cooldown, broadcast to every edge and worker.
    @property
    def router_cooldown(self) -> str:
        return f"{self.prefix}.router.cooldown"

    # Replies: core NATS, one subject per edge process.
    def reply(self, edge_id: str) -> str:
        return f"{self.prefix}.reply.{edge_id}"

    # Cancellation of in-flight requests (client went away): core NATS broadcast to workers.
    @property
    def cancel(self) -> str:
        return f"{self.prefix}.cancel"

    # Worker presence: core NATS heartbeats, one subject per provider.
    def heartbeat(self, provider: str) -> str:
        return f"{self.prefix}.worker.heartbeat.{provider}"

    @property
    def heartbeat_wildcard(self) -> str:
        return f"{self.prefix}.worker.heartbeat.*"

    # Usage events: a JetStream stream with limits retention (many readers).
    # Subjects: <prefix>.usage.<provider>.<status> (one UsageEvent: the edge's refusals, and what
    # older workers published) and <prefix>.usage.batch (a UsageBatch: what a worker publishes).
    @property
    def usage_stream(self) -> str:
        return f"{self._stream_prefix}_USAGE"

    @property
    def usage_wildcard(self) -> str:
        return f"{self.prefix}.usage.>"

    def usage(self, provider: str, status: str) -> str:
        return f"{self.prefix}.usage.{provider}.{status}"

    @property
    def usage_batch(self) -> str:
        """One token after `usage`, so no `<provider>.<status>` subject is ever taken for it."""
        return f"{self.prefix}.usage.batch"

    @property
    def metering_consumer(self) -> str:
        return f"{self.prefix}-metering"

    # Metering's read service (it owns the embedded ClickHouse store): request/reply.
    @property
    def metering_query(self) -> str:
        return f"{self.prefix}.metering.query"

    # JetStream KV buckets (records in llmgw.contracts.records).
    @property
    def keys_bucket(self) -> str:
        return f"{self._stream_prefix}_keys"

    @property
    def users_bucket(self) -> str:
        return f"{self._stream_prefix}_users"

    @property
    def teams_bucket(self) -> str:
        return f"{self._stream_prefix}_teams"

    @property
    def organizations_bucket(self) -> str:
        """Organizations (records.OrganizationRecord), under `kv_key(organization_id)`."""
        return f"{self._stream_prefix}_organizations"

    @property
    def budgets_bucket(self) -> str:
        """Budget ledgers: spend and reservations per key, user, team (records.BudgetLedger)."""
        return f"{self._stream_prefix}_budgets"

    def budget_alert(self, kind: str) -> str:
        """Soft-budget alerts (records.BudgetAlert, JSON): <prefix>.alerts.budget.<kind>."""
        return f"{self.prefix}.alerts.budget.{kind}"

    @property
    def alerts_wildcard(self) -> str:
        return f"{self.prefix}.alerts.>"

    @property
    def alerts_stream(self) -> str:
        """Alerts are kept (limits retention) so a program that was down still reads them."""
        return f"{self._stream_prefix}_ALERTS"

    @property
    def ratelimits_bucket(self) -> str:
        """Rate-limit state shared by all edges (records.RateWindow per limited key/user/team/deployment)."""
        return f"{self._stream_prefix}_ratelimits"

    @property
    def settings_bucket(self) -> str:
        """Gateway-wide settings changed at run time: policies and provider credentials."""
        return f"{self._stream_prefix}_settings"

    @property
    def blobs_bucket(self) -> str:
        """JetStream object store of request bodies and replies too large for one bus message
        (uploads; big answers and stream chunks, under `reply_blob_name`), kept `BLOB_TTL` at most."""
        return f"{self._stream_prefix}_blobs"

    @property
    def responses_bucket(self) -> str:
        """Stored responses of the Responses API (records.StoredResponse), kept for a set time."""
        return f"{self._stream_prefix}_responses"

    @property
    def responses_objects_bucket(self) -> str:
        """JetStream object store of stored responses too large for one KV message (the KV record
        says so with `StoredResponse.stored_apart`), kept as long as the KV records."""
        return f"{self._stream_prefix}_responses_large"

    @property
    def chat_completions_bucket(self) -> str:
        """Stored chat completions (`store: true`; records.StoredChatCompletion and their owners'
        index keys), kept as long as stored responses."""
        return f"{self._stream_prefix}_chat_completions"

    @property
    def chat_completions_objects_bucket(self) -> str:
        """JetStream object store of stored chat completions too large for one KV message."""
        return f"{self._stream_prefix}_chat_completions_large"

    # Background responses (the Responses API's `background: true`).
    @property
    def response_events_stream(self) -> str:
        """JetStream stream (limits retention) of background streams' events, so a client that
        lost its connection resumes with `starting_after` (messages.ResponseStreamEntry)."""
        return f"{self._stream_prefix}_RESPONSE_EVENTS"

    @property
    def response_events_wildcard(self) -> str:
        return f"{self.prefix}.response.events.*"

    def response_events(self, response_id: str) -> str:
        """The events of one background response, in order (a response id is one subject token)."""
        return f"{self.prefix}.response.events.{response_id}"

    @property
    def response_cancel(self) -> str:
        """Core NATS request to every edge: cancel a background response (messages.CancelResponse);
        only the edge running it answers."""
        return f"{self.prefix}.response.cancel"

    def provider_batch(self, provider: str) -> str:
        """Core NATS request/reply, edge -> one worker of `provider` (queue group): submit, poll or
        read the results of a batch handed to the provider's own batch API
        (provider_batches.ProviderBatchCall -> ProviderBatchAnswer)."""
        return f"{self.prefix}.pbatch.{provider}"

    # The Files and Batch APIs (records in llmgw.contracts.batches).
    @property
    def files_bucket(self) -> str:
        """File records (batches.FileRecord) under the file's id."""
        return f"{self._stream_prefix}_files"

    @property
    def files_objects_bucket(self) -> str:
        """JetStream object store of the files' bytes, under the file's id."""
        return f"{self._stream_prefix}_file_objects"

    @property
    def batches_bucket(self) -> str:
        """Batches (batches.BatchRecord, `batch.<id>`)."""
        return f"{self._stream_prefix}_batches"

    @property
    def batch_runs_bucket(self) -> str:
        """The batches not yet ended: their leases (batches.BatchLease, under the batch's id)."""
        return f"{self._stream_prefix}_batch_runs"

    @property
    def batch_lines_bucket(self) -> str:
        """Each batch line sent, then its result (batches.BatchLine, `<batch id>.<line index>`)."""
        return f"{self._stream_prefix}_batch_lines"

    # The admin console (records in llmgw.contracts.console).
    @property
    def console_sessions_bucket(self) -> str:
        """Console sessions (console.ConsoleSession) under the HMAC of the session id (the cookie),
        kept at most the session's max age (the bucket's TTL)."""
        return f"{self._stream_prefix}_console_sessions"


# Header carrying the JetStream de-duplication id (a redelivered publish is stored once).
MSG_ID_HEADER = "Nats-Msg-Id"
# Header carrying the request's W3C trace context (`00-<trace id>-<span id>-<flags>`) from the edge
# to the worker and from the worker to metering, when tracing is on.
TRACEPARENT_HEADER = "traceparent"


def reply_blob_name(request_id: str, attempt: int, seq: int | None = None) -> str:
    """The blobs-store name of a reply too large for one bus message: a whole answer's
    (`seq` None), or a stream message's. Distinct from the request body's (the request id) and
    between deliveries of one request (`attempt`), so no reply overwrites another's."""
    return f"{request_id}.reply.{attempt}" if seq is None else f"{request_id}.reply.{attempt}.{seq}"


__all__ = ["MSG_ID_HEADER", "TRACEPARENT_HEADER", "ErrorCode", "ErrorType", "Priority", "Subjects", "reply_blob_name"]
