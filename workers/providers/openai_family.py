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
from llmgw.contracts import UpstreamRequest
from workers.providers.answers import Completion, NativeItem, NativeUsage, StreamItem
from workers.providers.base import Provider
from workers.providers.errors import ProviderError, error_reader, invalid_answer
from workers.providers.multipart import multipart_body
from workers.providers.native import body_with_model
from workers.providers.openai_audio import audio_upload, bills_tokens, speech_characters, speech_items, transcription_items
from workers.providers.openai_completions import completions_fields, speaks_completions
from workers.providers.openai_media import images_answer_to_usage, moderation_input_usage
from workers.providers.request_body import Fields, RequestBody, drop_metadata_tags, json_value
from workers.providers.rerank import rerank_answer, rerank_ask
from workers.providers.rerank_servers import rerank_format, server_answer, server_request
from workers.providers.responses_native import forward_responses
from workers.providers.sse import sse_data
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
    # The Responses API counts the same under other names.
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_tokens_details: _PromptDetails | None = None
    output_tokens_details: _CompletionDetails | None = None


class _WithUsage(msgspec.Struct):
    usage: _OpenAIUsage | None = None


class _ChunkProbe(msgspec.Struct):
    usage: _OpenAIUsage | None = None
    choices: list[msgspec.Raw] = []
    response: _WithUsage | None = None  # a Responses stream's response.completed (or .incomplete) event


class _ErrorBody(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody | str | None = None


_usage_decoder = msgspec.json.Decoder(_WithUsage)
_chunk_decoder = msgspec.json.Decoder(_ChunkProbe)
_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)
_encoder = msgspec.json.Encoder()

# ---- converters -----------------------------------------------------------------------------


def openai_usage_to_usage(u: _OpenAIUsage) -> Usage:
    """Chat-completions usage, or the Responses API's (`input_tokens`, `output_tokens`, ...)."""
    prompt_details = u.prompt_tokens_details or u.input_tokens_details
    completion_details = u.completion_tokens_details or u.output_tokens_details
    return Usage(
        prompt_tokens=(u.prompt_tokens if u.prompt_tokens is not None else u.input_tokens) or 0,
        completion_tokens=(u.completion_tokens if u.completion_tokens is not None else u.output_tokens) or 0,
        cached_tokens=(prompt_details.cached_tokens or 0) if prompt_details else 0,
        reasoning_tokens=(completion_details.reasoning_tokens or 0) if completion_details else 0,
    )


def openai_error_to_provider_error(status: int, body: bytes) -> ProviderError:
    """`{"error": {"message", "type", "code", "param"}}` (or `{"error": "..."}`): OpenAI's own
    type, code and param are what an OpenAI client expects, so they are kept as they are."""
    try:
        err = _error_decoder.decode(body).error
    except msgspec.DecodeError:
        err = None
    if isinstance(err, _ErrorBody):
        return ProviderError(message=err.message, type=err.type, code=str(err.code) if err.code else None, param=err.param)
    return ProviderError(message=err or None)


openai_error_to_upstream_error = error_reader(openai_error_to_provider_error)

# Request fields for the gateway, never sent upstream: its own timeout and routing knobs, and
# client-supplied upstream URLs or credentials (which would let a caller aim the gateway anywhere).
GATEWAY_ONLY_FIELDS = frozenset({"timeout", "api_base", "base_url", "api_key", "api_version", "num_retries", "fallbacks", "tags"})


def rewrite_body(body: RequestBody, upstream_model: str, stream: bool, system_prompts: list[str] | None = None) -> bytes:
    """The client's body with the upstream's model name and the policy's system prompts first;
    streams always ask for usage; gateway-only fields removed. Every other field goes on as the
    client wrote it (the body's top-level fields are shared: only a shallow copy is changed)."""
    return rewrite_fields(body.fields(), upstream_model, stream, system_prompts)


def rewrite_fields(fields: Fields, upstream_model: str, stream: bool, system_prompts: list[str] | None = None) -> bytes:
    """`rewrite_body` of a body's top-level fields (not changed: a copy is)."""
    data = dict(fields)
    data["model"] = upstream_model
    if not GATEWAY_ONLY_FIELDS.isdisjoint(data):  # (rare: one set look-up instead of seven pops)
        for name in GATEWAY_ONLY_FIELDS.intersection(data):
            del data[name]
    if "metadata" in data:
        drop_metadata_tags(data)
    if system_prompts and "messages" in data:
        data["messages"] = _with_system_prompts(data["messages"], system_prompts)
    if stream:
        options = json_value(data["stream_options"]) if "stream_options" in data else None
        data["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return _encoder.encode(data)


def _with_system_prompts(messages: Any, system_prompts: list[str]) -> Any:
    """The JSON array of messages (as text) with the policy's system messages first; anything
    but an array is left for the upstream to refuse."""
    text = bytes(messages) if isinstance(messages, msgspec.Raw) else _encoder.encode(messages)
    if not text.startswith(b"["):
        return messages
    prompts = _encoder.encode([{"role": "system", "content": p} for p in system_prompts])
    rest = text[1:].lstrip()
    return msgspec.Raw(prompts if rest.startswith(b"]") else prompts[:-1] + b"," + rest)


# ---- the adapter ------------------------------------------------------------------------------


class OpenAIFamily(Provider):
    def url(self, deployment: Deployment, path: str) -> str:
        return f"{deployment.api_base}/{path}"

    def headers(self, deployment: Deployment) -> dict[str, str]:
        headers = {"content-type": "application/json", **dict(deployment.extra_headers)}
        if deployment.api_key is not None:
            headers["authorization"] = f"Bearer {deployment.api_key.reveal()}"
        return headers

    def _request(
        self, deployment: Deployment, request: UpstreamRequest, path: str, body: bytes, upstream_model: str
    ) -> httpx.Request:
        key: tuple[str, ...] = (deployment.id, path)
        templated = deployment.api_base is not None and "{model}" in deployment.api_base
        if templated:  # one server per model path (`http://llm.internal/{model}/v1`)
            key = (deployment.id, f"{upstream_model}\n{path}")

        def url() -> str:
            built = self.url(deployment, path)
            return built.replace("{model}", upstream_model) if templated else built

        return self.endpoint_request(deployment, request, key, url, body)

    async def _post(
        self, deployment: Deployment, request: UpstreamRequest, path: str, body: bytes, upstream_model: str
    ) -> Completion:
        upstream = self._request(deployment, request, path, body, upstream_model)
        content = await self.fetch(upstream, deployment, openai_error_to_upstream_error)
        try:
            probe = _usage_decoder.decode(content)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        return Completion(content, openai_usage_to_usage(probe.usage) if probe.usage else None)

    async def chat(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        sent = rewrite_body(RequestBody.of(request, body), upstream_model, False, request.system_prompts)
        return await self._post(deployment, request, "chat/completions", sent, upstream_model)

    async def embeddings(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        sent = rewrite_body(RequestBody.of(request, body), upstream_model, False)
        return await self._post(deployment, request, "embeddings", sent, upstream_model)

    async def chat_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[StreamItem]:
        sent = rewrite_body(RequestBody.of(request, body), upstream_model, True, request.system_prompts)
        async for item in self._stream(deployment, request, "chat/completions", sent, upstream_model):
            yield item

    async def _stream(
        self, deployment: Deployment, request: UpstreamRequest, path: str, sent: bytes, upstream_model: str
    ) -> AsyncIterator[StreamItem]:
        """An OpenAI-format stream of chunks (chat or text completions), relayed as they come."""
        upstream = self._request(deployment, request, path, sent, upstream_model)
        async with self.open_stream(upstream, deployment, openai_error_to_upstream_error) as resp:
            finished = False
            async for raw in sse_data(self.client.chunks(resp)):
                if raw == b"[DONE]":
                    finished = True
                    break
                try:
                    probe = _chunk_decoder.decode(raw)
                except msgspec.DecodeError:
                    raise invalid_answer("the upstream sent an invalid stream chunk") from None
                if probe.usage is not None:
                    yield openai_usage_to_usage(probe.usage)
                    if not probe.choices and not request.include_usage:
                        continue  # the usage-only chunk the client did not ask for
                yield raw
            if not finished:
                raise invalid_answer("the upstream ended the stream early")

    # ---- the Responses API, to deployments that speak it (Operation.RESPONSES) ------------------

    def responses_url(self, deployment: Deployment, upstream_model: str) -> str:
        return self.url(deployment, "responses").replace("{model}", upstream_model)

    async def responses(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[NativeItem]:
        body = RequestBody.of(request, body)
        async for item in forward_responses(
            self, deployment, request, upstream_model, body, GATEWAY_ONLY_FIELDS, openai_error_to_upstream_error
        ):
            yield item

    # ---- audio: transcriptions, translations, speech (the answers: openai_audio.py) ------------

    async def transcription(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[NativeItem]:
        upload = audio_upload(request)
        content_type, sent = multipart_body(upload, upstream_model)
        upstream = self._request(deployment, request, f"audio/{upload.task}", sent, upstream_model)
        upstream.headers["content-type"] = content_type
        by_tokens = bills_tokens(deployment, upstream_model)
        async with self.open_stream(upstream, deployment, openai_error_to_upstream_error) as resp:
            async for item in transcription_items(self.client, resp, upload, by_tokens):
                yield item

    async def speech(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[NativeItem]:
        source = RequestBody.of(request, body)
        characters = speech_characters(source)
        upstream = self._request(deployment, request, "audio/speech", rewrite_body(source, upstream_model, False), upstream_model)
        by_tokens = bills_tokens(deployment, upstream_model)
        async with self.open_stream(upstream, deployment, openai_error_to_upstream_error) as resp:
            async for item in speech_items(self.client, resp, characters, by_tokens):
                yield item

    # ---- legacy completions: native where the deployment serves them, else through chat --------

    async def completions(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        if not speaks_completions(deployment, upstream_model):
            return await super().completions(deployment, request, upstream_model, body)
        fields = completions_fields(RequestBody.of(request, body), request.system_prompts)
        return await self._post(deployment, request, "completions", rewrite_fields(fields, upstream_model, False), upstream_model)

    async def completions_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[StreamItem]:
        if not speaks_completions(deployment, upstream_model):
            async for item in super().completions_stream(deployment, request, upstream_model, body):
                yield item
            return
        fields = completions_fields(RequestBody.of(request, body), request.system_prompts)
        async for item in self._stream(
            deployment, request, "completions", rewrite_fields(fields, upstream_model, True), upstream_model
        ):
            yield item

    # ---- images, moderations, rerank ---------------------------------------------------------

    async def images(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        fields = RequestBody.of(request, body).fields()
        upstream = self._request(
            deployment, request, "images/generations", rewrite_fields(fields, upstream_model, False), upstream_model
        )
        content = await self.fetch(upstream, deployment, openai_error_to_upstream_error)
        return Completion(content, images_answer_to_usage(content, upstream_model, fields))

    async def moderations(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        fields = RequestBody.of(request, body).fields()
        upstream = self._request(
            deployment, request, "moderations", rewrite_fields(fields, upstream_model, False), upstream_model
        )
        content = await self.fetch(upstream, deployment, openai_error_to_upstream_error)
        return Completion(content, moderation_input_usage(fields))

    async def rerank(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        ask, wire = rerank_ask(RequestBody.of(request, body)), rerank_format(deployment)
        upstream = self._request(deployment, request, "rerank", server_request(ask, upstream_model, wire), upstream_model)
        content = await self.fetch(upstream, deployment, openai_error_to_upstream_error)
        answer_id, ranked, usage = server_answer(content, ask, wire)
        return Completion(rerank_answer(answer_id or request.request_id, ranked, ask, usage), usage)

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
    carries it (present when the client asked for `stream_options.include_usage`); for the
    Responses API, the response's `usage`, in a stream that of `response.completed`."""

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
        usage = probe.usage or (probe.response.usage if probe.response is not None else None)
        if usage is not None:
            self.usage = openai_usage_to_usage(usage)
