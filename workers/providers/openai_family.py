"""The OpenAI wire format, shared by OpenAI and every OpenAI-compatible server.

API reference: https://platform.openai.com/docs/api-reference/chat (chat completions, streaming
chunks, `stream_options.include_usage`), /embeddings, and the error object format.
Members of the family (vLLM, Ollama, Together, Groq, ...) differ only in defaults, which live in
`llmgw.catalog`; a member that needs more overrides `url` or `headers`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType, UpstreamRequest
from workers.providers.base import Completion, NativeUsage, Provider, StreamItem, UpstreamError, body_with_model, scrub
from workers.usage import Usage

# ---- private wire types ---------------------------------------------------------------------


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class _OpenAIUsage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _WithUsage(msgspec.Struct):
    usage: _OpenAIUsage | None = None


class _ChunkProbe(msgspec.Struct):
    usage: _OpenAIUsage | None = None
    choices: list[msgspec.Raw] = []


class _ErrorBody(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody | str | None = None


class _ModelProbe(msgspec.Struct):
    model: str = ""


_model_probe_decoder = msgspec.json.Decoder(_ModelProbe)
_usage_decoder = msgspec.json.Decoder(_WithUsage)
_chunk_decoder = msgspec.json.Decoder(_ChunkProbe)
_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)
_body_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()

# ---- converters -----------------------------------------------------------------------------


def openai_usage_to_usage(u: _OpenAIUsage) -> Usage:
    return Usage(
        prompt_tokens=u.prompt_tokens or 0,
        completion_tokens=u.completion_tokens or 0,
        cached_tokens=(u.prompt_tokens_details.cached_tokens or 0) if u.prompt_tokens_details else 0,
        reasoning_tokens=(u.completion_tokens_details.reasoning_tokens or 0) if u.completion_tokens_details else 0,
    )


def openai_error_to_upstream_error(status: int, body: bytes, headers: httpx.Headers, deployment: Deployment) -> UpstreamError:
    try:
        err = _error_decoder.decode(body).error
    except msgspec.DecodeError:
        err = None
    if isinstance(err, _ErrorBody):
        message, etype, code, param = err.message, err.type, err.code, err.param
    else:
        message, etype, code, param = (err or body[:500].decode(errors="replace")), None, None, None
    message = scrub(message or f"upstream answered {status}", deployment)
    if status in (401, 403):
        # The provider refused the gateway's own credential: an operator problem, not the client's.
        return UpstreamError(
            502,
            f"the upstream refused the credential of deployment {deployment.id} ({status})",
            ErrorType.API,
            ErrorCode.UPSTREAM_ERROR,
        )
    if status == 429:
        retry = headers.get("retry-after")
        return UpstreamError(
            429,
            message,
            ErrorType.RATE_LIMIT,
            str(code) if code else ErrorCode.RATE_LIMITED,
            param,
            retry_after=float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
        )
    if 400 <= status < 500:
        return UpstreamError(status, message, etype or ErrorType.INVALID_REQUEST, str(code) if code else None, param)
    return UpstreamError(502, f"upstream error {status}: {message}", ErrorType.API, ErrorCode.UPSTREAM_ERROR)


# Request fields for the gateway, never sent upstream: its own timeout and routing knobs, and
# client-supplied upstream URLs or credentials (which would let a caller aim the gateway anywhere).
GATEWAY_ONLY_FIELDS = ("timeout", "api_base", "base_url", "api_key", "api_version", "num_retries", "fallbacks")


def rewrite_body(body: bytes, upstream_model: str, stream: bool, system_prompts: list[str] | None = None) -> bytes:
    """The client's body with the upstream's model name and the policy's system prompts first;
    streams always ask for usage; gateway-only fields removed."""
    data = _body_decoder.decode(body)
    data["model"] = upstream_model
    for name in GATEWAY_ONLY_FIELDS:
        data.pop(name, None)
    if system_prompts and isinstance(data.get("messages"), list):
        data["messages"] = [{"role": "system", "content": p} for p in system_prompts] + data["messages"]
    if stream:
        options = data.get("stream_options")
        data["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return _encoder.encode(data)


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The `data:` field of each server-sent event line, as bytes, the moment its line is complete.

    Blank separators, comments and other fields are skipped. (httpx's `aiter_lines()` would decode
    every chunk to text, split it in three generator layers, and the data would be encoded back.)
    """
    pending = b""
    async for chunk in chunks:
        lines = (pending + chunk).splitlines(keepends=True)  # at \n, \r\n or \r
        pending = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
    if pending.startswith(b"data:"):
        yield pending[5:].strip()


# ---- the adapter ------------------------------------------------------------------------------


class OpenAIFamily(Provider):
    def url(self, deployment: Deployment, path: str) -> str:
        return f"{deployment.api_base}/{path}"

    def headers(self, deployment: Deployment) -> dict[str, str]:
        headers = {"content-type": "application/json", **dict(deployment.extra_headers)}
        if deployment.api_key is not None:
            headers["authorization"] = f"Bearer {deployment.api_key.reveal()}"
        return headers

    def _request(self, deployment: Deployment, request: UpstreamRequest, path: str, body: bytes) -> httpx.Request:
        key = (deployment.id, path)
        model = None
        if deployment.api_base is not None and "{model}" in deployment.api_base:
            # One server per model path (`http://llm.internal/{model}/v1`): the body names the model.
            model = _model_probe_decoder.decode(body).model
            key = (deployment.id, f"{model}\n{path}")

        def url() -> str:
            built = self.url(deployment, path)
            return built if model is None else built.replace("{model}", model)

        return self.endpoint_request(deployment, request, key, url, body)

    async def _post(self, deployment: Deployment, request: UpstreamRequest, path: str, body: bytes) -> Completion:
        content = await self.fetch(self._request(deployment, request, path, body), deployment, openai_error_to_upstream_error)
        try:
            probe = _usage_decoder.decode(content)
        except msgspec.DecodeError:
            raise UpstreamError(502, "the upstream answered with invalid JSON", ErrorType.API, ErrorCode.UPSTREAM_ERROR) from None
        return Completion(content, openai_usage_to_usage(probe.usage) if probe.usage else None)

    async def chat(self, deployment: Deployment, request: UpstreamRequest, upstream_model: str) -> Completion:
        body = rewrite_body(request.body, upstream_model, False, request.system_prompts)
        return await self._post(deployment, request, "chat/completions", body)

    async def embeddings(self, deployment: Deployment, request: UpstreamRequest, upstream_model: str) -> Completion:
        return await self._post(deployment, request, "embeddings", rewrite_body(request.body, upstream_model, False))

    async def chat_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str
    ) -> AsyncIterator[StreamItem]:
        body = rewrite_body(request.body, upstream_model, True, request.system_prompts)
        upstream = self._request(deployment, request, "chat/completions", body)
        async with self.open_stream(upstream, deployment, openai_error_to_upstream_error) as resp:
            finished = False
            async for raw in sse_data(self.client.chunks(resp)):
                if raw == b"[DONE]":
                    finished = True
                    break
                try:
                    probe = _chunk_decoder.decode(raw)
                except msgspec.DecodeError:
                    raise UpstreamError(502, "the upstream sent an invalid stream chunk", ErrorType.API) from None
                if probe.usage is not None:
                    yield openai_usage_to_usage(probe.usage)
                    if not probe.choices and not request.include_usage:
                        continue  # the usage-only chunk the client did not ask for
                yield raw
            if not finished:
                raise UpstreamError(502, "the upstream ended the stream early", ErrorType.API, ErrorCode.UPSTREAM_ERROR)

    # ---- native passthrough: /openai/v1/... (members with their own route override these) ------

    def native_root(self, deployment: Deployment, upstream_model: str) -> str:
        """The API root without `/v1`: the client's native path starts with it."""
        return deployment.base_for(upstream_model).rstrip("/").removesuffix("/v1")

    def native_headers(self, deployment: Deployment) -> dict[str, str]:
        return {"authorization": f"Bearer {deployment.api_key.reveal()}"} if deployment.api_key is not None else {}

    def native_body(self, body: bytes, upstream_model: str) -> bytes:
        """The model group's name becomes the upstream's model name (other bodies pass as they are)."""
        return body_with_model(body, upstream_model)

    def native_usage(self) -> NativeUsage:
        return OpenAIUsageReader()


class OpenAIUsageReader(NativeUsage):
    """Usage of a native OpenAI-format call: a whole body's `usage`, or the chunk of a stream that
    carries it (present when the client asked for `stream_options.include_usage`)."""

    def body(self, content: bytes) -> None:
        try:
            probe = _usage_decoder.decode(content)
        except msgspec.DecodeError:
            return
        if probe.usage is not None:
            self.usage = openai_usage_to_usage(probe.usage)

    def event(self, data: bytes) -> None:
        if b'"usage"' not in data:
            return  # content chunks (and [DONE]) carry no usage: skip them without parsing
        try:
            probe = _chunk_decoder.decode(data)
        except msgspec.DecodeError:
            return
        if probe.usage is not None:
            self.usage = openai_usage_to_usage(probe.usage)
