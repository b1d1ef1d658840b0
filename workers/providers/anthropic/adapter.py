"""The Anthropic adapter: OpenAI chat over the Messages API, the native routes, and count_tokens.

Calls POST {api_base}/v1/messages with `x-api-key` and `anthropic-version` headers
(https://docs.anthropic.com/en/api/messages), and POST {api_base}/v1/messages/count_tokens
(https://docs.anthropic.com/en/api/messages-count-tokens). Anthropic has no embeddings endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import NativeCall, UpstreamRequest
from llmgw.prices import price_for
from workers.budget_cap import completion_allowance
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
from workers.providers.messages_body import forwarded_body
from workers.providers.native import body_with_model, forward
from workers.providers.request_body import RequestBody
from workers.providers.sse import sse_data
from workers.usage import Usage


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

    async def count_tokens(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        """Anthropic's own count of the request (the policy system prompts put first, as they are
        sent with the request itself); free, so its usage has no tokens."""
        forwarded = forwarded_body(request.body, upstream_model, request.system_prompts, None)
        upstream = self.endpoint_request(
            deployment,
            request,
            (deployment.id, upstream_model, "count_tokens"),
            lambda: f"{api_root(deployment, upstream_model)}/v1/messages/count_tokens",
            forwarded,
        )
        for name, value in _client_headers(request.native):
            upstream.headers[name] = value
        content = await self.fetch(upstream, deployment, anthropic_error_to_upstream_error)
        try:
            count = count_decoder.decode(content)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        return Completion(encoder.encode({"input_tokens": count.input_tokens}), Usage())

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
        (Anthropic refuses a request without it) and the operator's extra_headers in place. A
        Messages request gets the policy system prompts first (`/v1/messages`, whose policies
        apply) and a `max_tokens` its capped budget can pay for."""
        call = request.native
        if call is not None and call.method == "POST" and call.path == "/v1/messages":
            cap = _completion_cap(request, deployment, upstream_model)
            if request.system_prompts or cap is not None:
                body_bytes = forwarded_body(request.body, upstream_model, request.system_prompts, cap)
                request = msgspec.structs.replace(request, body=body_bytes)
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


class _Count(msgspec.Struct):
    input_tokens: int


count_decoder = msgspec.json.Decoder(_Count)


def _client_headers(call: NativeCall | None) -> list[tuple[str, str]]:
    """The client's anthropic-version and anthropic-beta (the edge kept only the harmless betas)."""
    if call is None:
        return []
    return [(n, v) for n, v in call.headers if n in ("anthropic-version", "anthropic-beta")]


def _completion_cap(request: UpstreamRequest, deployment: Deployment, upstream_model: str) -> int | None:
    """The most completion tokens a request admitted with a cost cap can pay for (None: no cap)."""
    if request.cost_cap is None:
        return None
    price = price_for(deployment, upstream_model)
    if price is None:
        return None
    return max(completion_allowance(price, request.cost_cap, len(request.body)), 1)
