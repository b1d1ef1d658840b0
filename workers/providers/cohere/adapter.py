"""The Cohere adapter: OpenAI chat and embeddings, and rerank, over Cohere's v2 API, and the native route.

Calls POST {api_base}/v2/chat, /v2/embed and /v2/rerank (cohere/rerank.py) with `Authorization: Bearer <key>`
(https://docs.cohere.com/reference/chat, https://docs.cohere.com/reference/embed). Clients reach
Cohere's own API at /cohere/v2/...: the path is appended to api_base with the gateway's key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import UpstreamRequest
from workers.providers.answers import Completion, NativeUsage, StreamItem
from workers.providers.base import Provider, translated_stream
from workers.providers.cohere.request import chat_request_to_cohere, embeddings_request_to_cohere
from workers.providers.cohere.rerank import cohere_rerank_to_ranked, rerank_request_to_cohere
from workers.providers.cohere.response import (
    cohere_embed_to_embeddings,
    cohere_error_to_upstream_error,
    cohere_response_to_chat_completion,
    cohere_usage_to_usage,
)
from workers.providers.cohere.stream import CohereStreamTranslator
from workers.providers.cohere.wire import (
    CohereUsage,
    EmbedMeta,
    chat_decoder,
    embed_decoder,
    encoder,
    event_decoder,
    usage_probe_decoder,
)
from workers.providers.errors import invalid_answer
from workers.providers.native import body_with_model
from workers.providers.request_body import RequestBody
from workers.providers.rerank import rerank_answer, rerank_ask
from workers.providers.sse import sse_data
from workers.usage import Usage


def embed_usage(meta: EmbedMeta | None) -> Usage | None:
    """An embed answer's usage: `meta.tokens`, else `meta.billed_units` (input tokens only)."""
    return cohere_usage_to_usage(CohereUsage(billed_units=meta.billed_units, tokens=meta.tokens)) if meta is not None else None


class CohereUsageReader(NativeUsage):
    """Usage of a native call: a chat body's `usage`, an embed body's `meta`, or a stream's
    message-end event."""

    def body(self, content: bytes) -> None:
        try:
            probe = usage_probe_decoder.decode(content)
        except msgspec.DecodeError:
            return
        self.usage = cohere_usage_to_usage(probe.usage) or embed_usage(probe.meta) or self.usage

    def event(self, data: bytes) -> None:
        if b'"message-end"' not in data:
            return  # content deltas: skipped without parsing
        try:
            event = event_decoder.decode(data)
        except msgspec.DecodeError:
            return
        if event.type == "message-end" and event.delta is not None:
            self.usage = cohere_usage_to_usage(event.delta.usage) or self.usage


class Cohere(Provider):
    def headers(self, deployment: Deployment) -> dict[str, str]:
        return {"content-type": "application/json", **self.native_headers(deployment)}

    def _request(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, path: str, body: bytes
    ) -> httpx.Request:
        return self.endpoint_request(
            deployment,
            request,
            (deployment.id, upstream_model, path),
            lambda: f"{self.native_root(deployment, upstream_model)}{path}",
            body,
        )

    async def _post(self, deployment: Deployment, upstream: httpx.Request) -> bytes:
        return await self.fetch(upstream, deployment, cohere_error_to_upstream_error)

    async def chat(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        chat = RequestBody.of(request, body).chat()
        sent = encoder.encode(chat_request_to_cohere(chat, upstream_model, request.system_prompts, False))
        content = await self._post(deployment, self._request(deployment, request, upstream_model, "/v2/chat", sent))
        try:
            resp = chat_decoder.decode(content)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        usage = cohere_usage_to_usage(resp.usage)
        return Completion(cohere_response_to_chat_completion(resp, upstream_model, usage), usage)

    async def chat_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[StreamItem]:
        chat = RequestBody.of(request, body).chat()
        sent = encoder.encode(chat_request_to_cohere(chat, upstream_model, request.system_prompts, True))
        upstream = self._request(deployment, request, upstream_model, "/v2/chat", sent)
        async with self.open_stream(upstream, deployment, cohere_error_to_upstream_error) as resp:
            translator = CohereStreamTranslator(deployment, upstream_model, request.include_usage)
            async for item in translated_stream(sse_data(self.client.chunks(resp)), event_decoder.decode, translator):
                yield item

    async def embeddings(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        embed = RequestBody.of(request, body).embeddings()
        sent = encoder.encode(embeddings_request_to_cohere(embed, upstream_model))
        content = await self._post(deployment, self._request(deployment, request, upstream_model, "/v2/embed", sent))
        try:
            resp = embed_decoder.decode(content)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        usage = embed_usage(resp.meta)
        return Completion(cohere_embed_to_embeddings(resp, upstream_model, embed.encoding_format == "base64", usage), usage)

    async def rerank(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        view = RequestBody.of(request, body)
        sent = rerank_request_to_cohere(view, upstream_model)
        content = await self._post(deployment, self._request(deployment, request, upstream_model, "/v2/rerank", sent))
        ask = rerank_ask(view)
        answer_id, ranked, usage = cohere_rerank_to_ranked(content, ask)
        return Completion(rerank_answer(answer_id or request.request_id, ranked, ask, usage), usage)

    # ---- native passthrough: /cohere/v2/chat, /cohere/v2/embed, ... ---------------------------

    def native_root(self, deployment: Deployment, upstream_model: str) -> str:
        """The API root: a `/v1` or `/v2` that configs written for other tools often end
        api_base with is dropped (clients' native paths and ours start with the version)."""
        return deployment.base_for(upstream_model).rstrip("/").removesuffix("/v2").removesuffix("/v1")

    def native_headers(self, deployment: Deployment) -> dict[str, str]:
        headers = dict(deployment.extra_headers)
        if deployment.api_key is not None:
            headers["authorization"] = f"Bearer {deployment.api_key.reveal()}"
        return headers

    def native_body(self, body: bytes, upstream_model: str) -> bytes:
        """The deployment's model in place of the client's (every v2 endpoint takes `model`)."""
        return body_with_model(body, upstream_model)

    def native_usage(self) -> NativeUsage:
        return CohereUsageReader()
