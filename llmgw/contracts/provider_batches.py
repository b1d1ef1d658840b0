"""A batch handed to a provider's own batch API: the calls an edge asks a worker to make (only
workers hold provider keys) on `Subjects.provider_batch(<provider>)`, core NATS request/reply to
one worker of a queue group, msgpack.

- `submit`: the batch's lines (their bodies, the upstream model filled in by the worker) uploaded
  and a provider batch created; the answer names its id. Each line's custom id upstream is its
  index in the gateway's batch (`line-<index>`), the gateway's own custom ids stay in its record.
- `poll`: the provider batch's state (`ProviderBatchState`); `cancel`: ask the provider to stop it
  (it then ends with the lines it ran).
- `results`: an ended provider batch's lines, a page at a time (each fits one NATS message), each metered by the worker (one usage event per line,
  the provider's tokens at the provider's batch price, `request_id` `<batch id>-<index>-provider`:
  fetched twice, still one row) before it answers with them.
"""

from __future__ import annotations

import msgspec

from llmgw.contracts.messages import Caller, LedgerRef


class ProviderBatchOp:
    SUBMIT = "submit"
    POLL = "poll"
    RESULTS = "results"
    FIND = "find"  # the provider's batch made for this gateway batch, if any (a submit cut short)
    CANCEL = "cancel"  # the gateway's batch is being cancelled: the provider stops what has not run


class ProviderBatchState:
    RUNNING = "running"  # validating, in progress, finalizing: poll again
    ENDED = "ended"  # completed (or expired / cancelled with partial results): read the results
    FAILED = "failed"  # the provider refused the batch: no results


class ProviderBatchCall(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    op: str  # ProviderBatchOp
    deployment_id: str
    batch_id: str  # the gateway's
    endpoint: str = "/v1/chat/completions"
    provider_batch_id: str = ""  # poll, results
    lines: list[bytes] = []  # submit: each line's body (JSON), in the batch's order
    upstream_model: str = ""
    # results: whom each line's usage event is for, and where metering settles its cost
    caller: Caller | None = None
    ledgers: dict[str, LedgerRef] = {}
    model_group: str = ""
    received_at: float = 0.0
    # results come in pages that fit a NATS message: the lines from index `results_from`, at most
    # `results_max_bytes` of answers
    results_from: int = 0
    results_max_bytes: int = 0


class ProviderLineResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    index: int  # the line's index in the gateway's batch
    status: int  # the HTTP status the provider gave the line
    body: bytes  # the answer (JSON, OpenAI's format: an Anthropic answer is converted)
    request_id: str = ""  # the usage row's request id
    cost: float = 0.0  # at the batch price
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ProviderBatchAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ok: bool
    status: int = 200  # a refusal's HTTP status (the upstream error policy's)
    message: str = ""
    error_code: str = ""
    provider_batch_id: str = ""
    state: str = ""  # ProviderBatchState (poll)
    results: list[ProviderLineResult] = []
    results_next: int = -1  # the index the next page starts at; -1: this was the last


def provider_line_id(batch_id: str, index: int) -> str:
    """A line's custom id in the provider's batch."""
    return f"line-{index}"


def provider_request_id(batch_id: str, index: int) -> str:
    """A handed-off line's usage row id (its client_request_id is `<batch id>-<index>`)."""
    return f"{batch_id}-{index}-provider"


_encoder = msgspec.msgpack.Encoder()
encode_provider_batch = _encoder.encode
decode_provider_batch_call = msgspec.msgpack.Decoder(ProviderBatchCall).decode
decode_provider_batch_answer = msgspec.msgpack.Decoder(ProviderBatchAnswer).decode

__all__ = [
    "ProviderBatchAnswer",
    "ProviderBatchCall",
    "ProviderBatchOp",
    "ProviderBatchState",
    "ProviderLineResult",
    "decode_provider_batch_answer",
    "decode_provider_batch_call",
    "encode_provider_batch",
    "provider_line_id",
    "provider_request_id",
]
