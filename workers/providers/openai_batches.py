"""OpenAI's Batch API for a batch the gateway hands off (workers/provider_batches.py): the JSONL
uploaded with `POST /v1/files` (purpose `batch`), `POST /v1/batches`, `GET /v1/batches/{id}`,
then the output and error files read with `GET /v1/files/{id}/content`
(https://platform.openai.com/docs/api-reference/batch). Upstream failures are read by the OpenAI
family's error reader (workers/providers/errors.py's policy) and raised as UpstreamError."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ProviderBatchState, provider_line_id
from workers.provider_batch_apis import LineOutcome
from workers.providers.base import fetch_body
from workers.providers.errors import invalid_answer
from workers.providers.openai_family import OpenAIFamily, openai_error_to_upstream_error
from workers.usage import Usage

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
TIMEOUT = 60.0  # seconds for each call (an upload of a large batch file included)

RUNNING = ("validating", "in_progress", "finalizing", "cancelling")
ENDED = ("completed", "expired", "cancelled")


def _call(
    adapter: OpenAIFamily, deployment: Deployment, method: str, path: str, body: bytes = b"", content_type: str | None = None
) -> httpx.Request:
    headers = httpx.Headers(adapter.headers(deployment))
    if content_type is not None:
        headers["content-type"] = content_type
    timeout = httpx.Timeout(deployment.timeout or TIMEOUT, connect=adapter.connect_timeout)
    return adapter.client.request(httpx.URL(adapter.url(deployment, path)), headers, body, timeout, method)


async def _json(adapter: OpenAIFamily, deployment: Deployment, upstream: httpx.Request) -> dict[str, Any]:
    content = await fetch_body(adapter.client, upstream, deployment, openai_error_to_upstream_error)
    try:
        value = _decoder.decode(content)
    except msgspec.DecodeError:
        raise invalid_answer() from None
    if not isinstance(value, dict):
        raise invalid_answer("the upstream's answer is not a JSON object")
    return value


def _line(batch_id: str, index: int, body: bytes, upstream_model: str, endpoint: str) -> bytes:
    fields = _decoder.decode(body)
    fields = {k: v for k, v in fields.items() if k not in ("stream", "stream_options")} | {"model": upstream_model}
    return _encoder.encode({"custom_id": provider_line_id(batch_id, index), "method": "POST", "url": endpoint, "body": fields})


async def submit(
    adapter: OpenAIFamily, deployment: Deployment, batch_id: str, endpoint: str, lines: list[bytes], upstream_model: str
) -> str:
    """Upload the lines and create the provider's batch; its id."""
    data = b"".join(_line(batch_id, i, body, upstream_model, endpoint) + b"\n" for i, body in enumerate(lines))
    boundary = f"llmgw{secrets.token_hex(12)}"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{batch_id}.jsonl"\r\n'
            "Content-Type: application/jsonl\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    upload = _call(adapter, deployment, "POST", "files", form, f"multipart/form-data; boundary={boundary}")
    file = await _json(adapter, deployment, upload)
    body = {
        "input_file_id": file.get("id"),
        "endpoint": endpoint,
        "completion_window": "24h",
        "metadata": {"llmgw_batch_id": batch_id},
    }
    created = await _json(adapter, deployment, _call(adapter, deployment, "POST", "batches", _encoder.encode(body)))
    provider_id = created.get("id")
    if not isinstance(provider_id, str) or not provider_id:
        raise invalid_answer("the upstream's batch has no id")
    return provider_id


async def find(adapter: OpenAIFamily, deployment: Deployment, batch_id: str) -> str:
    """The id of the provider's batch submitted for the gateway's `batch_id` (its metadata names
    it), among the newest 100; empty when there is none."""
    listed = await _json(adapter, deployment, _call(adapter, deployment, "GET", "batches?limit=100"))
    for batch in listed.get("data") or ():
        metadata = batch.get("metadata") if isinstance(batch, dict) else None
        if isinstance(metadata, dict) and metadata.get("llmgw_batch_id") == batch_id and isinstance(batch.get("id"), str):
            return str(batch["id"])
    return ""


async def poll(adapter: OpenAIFamily, deployment: Deployment, provider_batch_id: str) -> tuple[str, dict[str, Any]]:
    """(ProviderBatchState, the provider's batch object)."""
    batch = await _json(adapter, deployment, _call(adapter, deployment, "GET", f"batches/{provider_batch_id}"))
    status = batch.get("status")
    if status in RUNNING:
        return ProviderBatchState.RUNNING, batch
    if status in ENDED:
        return ProviderBatchState.ENDED, batch
    return ProviderBatchState.FAILED, batch


async def cancel(adapter: OpenAIFamily, deployment: Deployment, provider_batch_id: str) -> None:
    """Ask the provider to stop the batch (it ends `cancelled`, with the lines it ran)."""
    await _json(adapter, deployment, _call(adapter, deployment, "POST", f"batches/{provider_batch_id}/cancel"))


def _usage(body: Any) -> Usage | None:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(cached or 0),
    )


async def results(adapter: OpenAIFamily, deployment: Deployment, provider_batch_id: str) -> list[LineOutcome]:
    """The lines of an ended provider batch (its output and error files), by the gateway's index."""
    _, batch = await poll(adapter, deployment, provider_batch_id)
    out: list[LineOutcome] = []
    for key in ("output_file_id", "error_file_id"):
        file_id = batch.get(key)
        if not isinstance(file_id, str) or not file_id:
            continue
        upstream = _call(adapter, deployment, "GET", f"files/{file_id}/content")
        content = await fetch_body(adapter.client, upstream, deployment, openai_error_to_upstream_error)
        for raw in content.splitlines():
            if raw.strip():
                outcome = _outcome(raw)
                if outcome is not None:
                    out.append(outcome)
    return out


def _outcome(raw: bytes) -> LineOutcome | None:
    try:
        line = _decoder.decode(raw)
        index = int(str(line["custom_id"]).removeprefix("line-"))
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None
    response = line.get("response") or {}
    if isinstance(response, dict) and "status_code" in response:
        body = response.get("body")
        return LineOutcome(index, int(response["status_code"]), _encoder.encode(body), _usage(body))
    error = line.get("error") or {}
    message = error.get("message", "the provider did not run this request") if isinstance(error, dict) else str(error)
    code = error.get("code") if isinstance(error, dict) else None
    body_out = {"error": {"message": message, "type": "api_error", "param": None, "code": code or "upstream_error"}}
    return LineOutcome(index, 500, _encoder.encode(body_out), None)
