"""The Anthropic adapter: OpenAI chat over the Messages API, and the native /v1/messages route.

Calls POST {api_base}/v1/messages with `x-api-key` and `anthropic-version` headers
(https://docs.anthropic.com/en/api/messages). Anthropic has no embeddings endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import UpstreamRequest
from workers.providers.answers import Completion, NativeItem, NativeUsage, StreamItem
from workers.providers.anthropic.request import chat_request_to_anthropic
from workers.providers.anthropic.response import (
    anthropic_error_to_upstream_error,
    anthropic_message_to_chat_completion,
    anthropic_usage_to_usage,
    merge_usage,
)
from workers.providers.anthropic.stream import AnthropicStreamTranslator
from workers.providers.anthropic.wire import (
    ANTHROPIC_VERSION,
    AnthropicUsage,
    encoder,
    event_decoder,
    message_decoder,
    usage_probe_decoder,
)
from workers.providers.base import Provider, translated_stream
from workers.providers.errors import invalid_answer, invalid_request
from workers.providers.native import body_with_model, forward
from workers.providers.request_body import RequestBody
from workers.providers.sse import sse_data


def api_root(deployment: Deployment, upstream_model: str) -> str:
    """The API root without `/v1` (configs written for other tools often include it)."""
    return deployment.base_for(upstream_model).rstrip("/").removesuffix("/v1")


class AnthropicUsageReader(NativeUsage):
    """Usage of a native call: a Message body's `usage`, or a stream's message_start usage
    updated by message_delta's."""

    def __init__(self) -> None:
        self._raw: AnthropicUsage | None = None

    def _update(self, raw: AnthropicUsage | None) -> None:
        if raw is not None:
            self._raw = merge_usage(self._raw, raw)
            self.usage = anthropic_usage_to_usage(self._raw)

    def body(self, content: bytes) -> None:
        try:
            self._update(usage_probe_decoder.decode(content).usage)
        except msgspec.DecodeError:
            pass

    def event(self, data: bytes) -> None:
        if b'"message_start"' not in data and b'"message_delta"' not in data:
            return  # most events are content deltas: skip them without parsing
        try:
            event = event_decoder.decode(data)
        except msgspec.DecodeError:
            return
        if event.type == "message_start" and event.message is not None:
            self._update(event.message.usage)
        elif event.type == "message_delta":
            self._update(event.usage)


class Anthropic(Provider):
    def headers(self, deployment: Deployment) -> dict[str, str]:
        """The operator's extra_headers come last: they may pin another anthropic-version or add
        anthropic-beta."""
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        headers.update(self.native_headers(deployment))
        headers.update(deployment.extra_headers)
        return headers

    def _request(self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: bytes) -> httpx.Request:
        return self.endpoint_request(
            deployment,
            request,
            (deployment.id, upstream_model),
            lambda: f"{api_root(deployment, upstream_model)}/v1/messages",
            body,
        )

    @staticmethod
    def _body(request: UpstreamRequest, body: RequestBody | None, upstream_model: str, stream: bool) -> bytes:
        chat = RequestBody.of(request, body).chat()
        return encoder.encode(chat_request_to_anthropic(chat, upstream_model, request.system_prompts, stream))

    async def chat(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        upstream = self._request(deployment, request, upstream_model, self._body(request, body, upstream_model, False))
        content = await self.fetch(upstream, deployment, anthropic_error_to_upstream_error)
        try:
            message = message_decoder.decode(content)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        usage = anthropic_usage_to_usage(message.usage) if message.usage is not None else None
        return Completion(anthropic_message_to_chat_completion(message, usage), usage)

    async def chat_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[StreamItem]:
        upstream = self._request(deployment, request, upstream_model, self._body(request, body, upstream_model, True))
        async with self.open_stream(upstream, deployment, anthropic_error_to_upstream_error) as resp:
            translator = AnthropicStreamTranslator(deployment, upstream_model, request.include_usage)
            async for item in translated_stream(sse_data(self.client.chunks(resp)), event_decoder.decode, translator):
                yield item

    async def embeddings(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        raise invalid_request("provider anthropic has no embeddings")

    # ---- native passthrough: /anthropic/v1/messages, ... --------------------------------------

    def native_root(self, deployment: Deployment, upstream_model: str) -> str:
        return api_root(deployment, upstream_model)

    def native_headers(self, deployment: Deployment) -> dict[str, str]:
        """Only the credential: forward() lets these override the client's headers, and a client's
        own anthropic-version / anthropic-beta must reach Anthropic (see `native`)."""
        return {"x-api-key": deployment.api_key.reveal()} if deployment.api_key is not None else {}

    def native_body(self, body: bytes, upstream_model: str) -> bytes:
        return body_with_model(body, upstream_model)

    def native_usage(self) -> NativeUsage:
        return AnthropicUsageReader()

    async def native(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[NativeItem]:
        """Forwarded as is, with anthropic-version 2023-06-01 added when the client sent none
        (Anthropic refuses a request without it) and the operator's extra_headers in place."""
        call = request.native
        if call is not None:
            sent = {name.lower() for name, _ in call.headers}
            added = [(n, v) for n, v in deployment.extra_headers if n.lower() not in sent]
            if "anthropic-version" not in sent and not any(n.lower() == "anthropic-version" for n, _ in added):
                added.append(("anthropic-version", ANTHROPIC_VERSION))
            if added:
                call = msgspec.structs.replace(call, headers=[*call.headers, *added])
                request = msgspec.structs.replace(request, native=call)
        async for item in forward(self, deployment, request, upstream_model):
            yield item
