"""Anthropic's Message Batches API for a batch the gateway hands off (workers/provider_batches.py):
`POST /v1/messages/batches` with `requests: [{custom_id, params}]` (each line's chat completions
body converted to a Messages request as the chat adapter converts it), `GET
/v1/messages/batches/{id}`, then the results JSONL from its `results_url`
(https://docs.anthropic.com/en/api/creating-message-batches). Each succeeded line's Message is
converted to a chat completion; an errored one is read by Anthropic's error reader (the upstream
error policy, workers/providers/errors.py) into an OpenAI error body with its status."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ProviderBatchState, provider_line_id
from workers.provider_batch_apis import LineOutcome
from workers.providers.anthropic.adapter import Anthropic, api_root
from workers.providers.anthropic.request import chat_request_to_anthropic
from workers.providers.anthropic.response import (
    anthropic_error_to_upstream_error,
    anthropic_message_to_chat_completion,
    anthropic_usage_to_usage,
)
from workers.providers.anthropic.wire import message_decoder
from workers.providers.base import fetch_body
from workers.providers.errors import invalid_answer
from workers.providers.request_body import RequestBody

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
TIMEOUT = 60.0
# Anthropic's error types and the HTTP status each has on the Messages API
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "overloaded_error": 529,
}


def _call(adapter: Anthropic, deployment: Deployment, method: str, url: str, body: bytes = b"") -> httpx.Request:
    timeout = httpx.Timeout(deployment.timeout or TIMEOUT, connect=adapter.connect_timeout)
    return adapter.client.request(httpx.URL(url), httpx.Headers(adapter.headers(deployment)), body, timeout, method)


async def _json(adapter: Anthropic, deployment: Deployment, upstream: httpx.Request) -> dict[str, Any]:
    content = await fetch_body(adapter.client, upstream, deployment, anthropic_error_to_upstream_error)
    try:
        value = _decoder.decode(content)
    except msgspec.DecodeError:
        raise invalid_answer() from None
    if not isinstance(value, dict):
        raise invalid_answer("the upstream's answer is not a JSON object")
    return value


def _root(deployment: Deployment, upstream_model: str) -> str:
    return f"{api_root(deployment, upstream_model)}/v1/messages/batches"


async def submit(adapter: Anthropic, deployment: Deployment, batch_id: str, lines: list[bytes], upstream_model: str) -> str:
    """Create the provider's batch from the lines' chat bodies; its id."""
    requests = []
    for index, body in enumerate(lines):
        chat = RequestBody(body).chat()
        params = chat_request_to_anthropic(chat, upstream_model, [], False)
        requests.append({"custom_id": provider_line_id(batch_id, index), "params": params})
    upstream = _call(adapter, deployment, "POST", _root(deployment, upstream_model), _encoder.encode({"requests": requests}))
    created = await _json(adapter, deployment, upstream)
    provider_id = created.get("id")
    if not isinstance(provider_id, str) or not provider_id:
        raise invalid_answer("the upstream's message batch has no id")
    return provider_id


async def poll(
    adapter: Anthropic, deployment: Deployment, provider_batch_id: str, upstream_model: str
) -> tuple[str, dict[str, Any]]:
    """(ProviderBatchState, the message_batch object)."""
    url = f"{_root(deployment, upstream_model)}/{provider_batch_id}"
    batch = await _json(adapter, deployment, _call(adapter, deployment, "GET", url))
    status = batch.get("processing_status")
    if status in ("in_progress", "canceling"):
        return ProviderBatchState.RUNNING, batch
    if status == "ended":
        return ProviderBatchState.ENDED, batch
    return ProviderBatchState.FAILED, batch


async def cancel(adapter: Anthropic, deployment: Deployment, provider_batch_id: str, upstream_model: str) -> None:
    """Ask Anthropic to stop the batch (it ends with the requests not run `canceled`)."""
    url = f"{_root(deployment, upstream_model)}/{provider_batch_id}/cancel"
    await _json(adapter, deployment, _call(adapter, deployment, "POST", url))


async def results(adapter: Anthropic, deployment: Deployment, provider_batch_id: str, upstream_model: str) -> list[LineOutcome]:
    """The lines of an ended message batch, by the gateway's index, as chat completions."""
    _, batch = await poll(adapter, deployment, provider_batch_id, upstream_model)
    url = batch.get("results_url")
    if not isinstance(url, str) or not url:
        raise invalid_answer("the ended message batch has no results_url")
    content = await fetch_body(
        adapter.client, _call(adapter, deployment, "GET", url), deployment, anthropic_error_to_upstream_error
    )
    out = []
    for raw in content.splitlines():
        if raw.strip():
            outcome = _outcome(raw, deployment)
            if outcome is not None:
                out.append(outcome)
    return out


def _outcome(raw: bytes, deployment: Deployment) -> LineOutcome | None:
    try:
        line = _decoder.decode(raw)
        index = int(str(line["custom_id"]).removeprefix("line-"))
        result = line["result"]
        kind = result["type"]
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None
    if kind == "succeeded":
        try:
            message = message_decoder.decode(_encoder.encode(result.get("message")))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _error_outcome(index, 502, {"type": "api_error", "message": "the upstream's message is not valid"}, deployment)
        usage = anthropic_usage_to_usage(message.usage) if message.usage is not None else None
        return LineOutcome(index, 200, anthropic_message_to_chat_completion(message, usage), usage)
    if kind == "errored":
        envelope = result.get("error") or {}
        error = envelope.get("error", envelope) if isinstance(envelope, dict) else {}
        error = error if isinstance(error, dict) else {}
        return _error_outcome(index, ERROR_STATUS.get(str(error.get("type")), 500), error, deployment)
    text = "the message batch expired before this request ran" if kind == "expired" else "the message batch was canceled"
    never_ran = _error_outcome(index, 500, {"type": f"batch_{kind}", "message": text}, deployment)
    return msgspec.structs.replace(never_ran, ran=False)


def _error_outcome(index: int, status: int, error: dict[str, Any], deployment: Deployment) -> LineOutcome:
    """The line's error as the client gets any upstream error: the policy's status and body."""
    body = _encoder.encode({"type": "error", "error": error})
    exc = anthropic_error_to_upstream_error(status, body, httpx.Headers(), deployment)
    answer = {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}
    return LineOutcome(index, exc.status, _encoder.encode(answer), None)
