"""Vectara's v2 query API (retrieval-augmented generation over a corpus) as a chat model.

Calls POST {api_base}/v2/corpora/{corpus_key}/query with the `x-api-key` header
(https://docs.vectara.com/docs/rest-api/query-corpus): `{"query", "search": {"limit"},
"generation": {"generation_preset_name"?, "max_used_search_results", "model_parameters":
{"max_tokens", "temperature"}}, "stream_response"}`. A whole answer is `{"summary",
"search_results", "factual_consistency_score", ...}`; a stream is server-sent events
`search_results`, `generation_info`, `generation_chunk` ({"generation_chunk": text}),
`generation_end`, `factual_consistency_score`, `end`, and `error` ({"messages": [...]}).
Errors are `{"messages": [...], "request_id", "field_errors"?}`.

What a chat request becomes:
- the corpus is `params.vectara_corpus_key`, or the upstream model name when that is not set
  (`model: vectara/<corpus_key>`); `params.vectara_generation_preset_name` picks the generation
  preset (Vectara's default otherwise);
- the query is the LAST user message. Earlier turns, and every system prompt (the client's and
  the policy's), are not sent: the query API has no conversation and no system turn;
- the answer is a chat.completion whose content is the summary (finish_reason `stop`: Vectara
  does not say whether max_tokens cut it).
Usage: Vectara reports no tokens. The adapter ESTIMATES them at 4 characters a token
(`workers.usage.estimate_tokens`): prompt tokens from the query, completion tokens from the
summary, built by `estimated_usage` and recorded as estimated. No embeddings, no native route.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from llmgw.config import Deployment, Secret
from llmgw.contracts import UpstreamRequest
from workers.providers.answers import Completion, StreamItem
from workers.providers.base import Provider, translated_stream
from workers.providers.chunks import ChunkWriter
from workers.providers.errors import ProviderError, error_reader, failed_mid_answer, invalid_answer, invalid_request
from workers.providers.openai_request import ChatMessage, ChatRequest, text_of
from workers.providers.request_body import RequestBody
from workers.providers.sse import sse_data
from workers.usage import Usage, estimate_tokens, estimated_usage, usage_to_openai

SEARCH_LIMIT = 10  # search results retrieved
MAX_USED_SEARCH_RESULTS = 5  # of which the generation reads this many

# ---- private wire types -------------------------------------------------------------------------


class _QueryResponse(msgspec.Struct):
    summary: str | None = None


class _StreamEvent(msgspec.Struct):
    type: str = ""
    generation_chunk: str | None = None
    messages: list[str] | None = None


class _VectaraError(msgspec.Struct):
    messages: list[str] | None = None
    field_errors: dict[str, str] | None = None


_encoder = msgspec.json.Encoder()
_response_decoder = msgspec.json.Decoder(_QueryResponse)
_event_decoder = msgspec.json.Decoder(_StreamEvent)
_error_decoder = msgspec.json.Decoder(_VectaraError)

# ---- converters ---------------------------------------------------------------------------------


def query_usage(query: str, summary: str) -> Usage:
    return estimated_usage(estimate_tokens(len(query)), estimate_tokens(len(summary)))


def corpus_key(deployment: Deployment, upstream_model: str) -> str:
    """`vectara_corpus_key` (a Secret: its name ends in `key`), else the upstream model name."""
    option = deployment.option("vectara_corpus_key")
    key = option.reveal() if isinstance(option, Secret) else option
    return str(key or upstream_model)


def last_user_text(messages: list[ChatMessage] | None) -> str:
    """The text of the last user message: the one thing Vectara is asked."""
    for m in reversed(messages or []):
        if m.role == "user":
            content = text_of(m.content, "\n")
            if content.strip():
                return content
            break
    raise invalid_request("Vectara answers a query: the last user message must have text", "messages")


def chat_request_to_vectara_query(chat: ChatRequest, deployment: Deployment, stream: bool) -> tuple[dict[str, Any], str]:
    """(the query request, the query text)."""
    if chat.tools:
        raise invalid_request("Vectara has no tool calling", "tools")
    query = last_user_text(chat.messages)
    parameters: dict[str, Any] = {}
    max_tokens = chat.max_completion_tokens or chat.max_tokens
    if max_tokens:
        parameters["max_tokens"] = max_tokens
    if chat.temperature is not None:
        parameters["temperature"] = chat.temperature
    generation: dict[str, Any] = {"max_used_search_results": MAX_USED_SEARCH_RESULTS}
    preset = deployment.option("vectara_generation_preset_name")
    if preset:
        generation["generation_preset_name"] = str(preset)
    if parameters:
        generation["model_parameters"] = parameters
    return {"query": query, "search": {"limit": SEARCH_LIMIT}, "generation": generation, "stream_response": stream}, query


def vectara_answer_to_chat_completion(summary: str, model: str, usage: Usage) -> bytes:
    return _encoder.encode(
        {
            "id": f"chatcmpl-vectara-{time.time_ns():x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": summary}, "finish_reason": "stop"}],
            "usage": usage_to_openai(usage),
        }
    )


def _messages(err: _VectaraError) -> str:
    parts = list(err.messages or [])
    parts += [f"{field}: {problem}" for field, problem in (err.field_errors or {}).items()]
    return "; ".join(parts)


def vectara_error_to_provider_error(status: int, body: bytes) -> ProviderError:
    """`{"messages": [...], "request_id", "field_errors"?}`: the messages and field errors joined."""
    try:
        text = _messages(_error_decoder.decode(body))
    except msgspec.DecodeError:
        text = ""
    return ProviderError(message=text or None)


vectara_error_to_upstream_error = error_reader(vectara_error_to_provider_error)


class VectaraStreamTranslator:
    """Query stream events -> chunks: generation_chunk is content, generation_end finishes the
    answer (and its usage), `end` finishes the stream; search results and scores are not relayed."""

    def __init__(self, deployment: Deployment, model: str, query: str, include_usage: bool) -> None:
        self.deployment, self.query, self.include_usage = deployment, query, include_usage
        self.out = ChunkWriter(model, "chatcmpl-vectara")
        self.summary: list[str] = []
        self.generated = False  # generation_end seen
        self.finished = False  # end seen

    def feed(self, event: _StreamEvent) -> list[StreamItem]:
        kind = event.type
        if kind == "generation_chunk" and event.generation_chunk and not self.generated:
            self.summary.append(event.generation_chunk)
            chunk = self.out.chunk([{"index": 0, "delta": {"content": event.generation_chunk}, "finish_reason": None}])
            return [*self.out.opening(), chunk]
        if kind == "error":
            raise failed_mid_answer("; ".join(event.messages or []), self.deployment)
        if kind == "generation_end" or (kind == "end" and not self.generated):
            self.generated = True
            self.finished = kind == "end"
            usage = query_usage(self.query, "".join(self.summary))
            items = [*self.out.opening(), self.out.chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]), usage]
            if self.include_usage:
                items.append(self.out.chunk([], usage))
            return items
        if kind == "end":
            self.finished = True
        return []  # search_results, generation_info, factual_consistency_score


# ---- the adapter --------------------------------------------------------------------------------


class Vectara(Provider):
    def _request(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: bytes, stream: bool
    ) -> httpx.Request:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            **dict(deployment.extra_headers),
        }
        if deployment.api_key is not None:
            headers["x-api-key"] = deployment.api_key.reveal()
        root = deployment.base_for(upstream_model).rstrip("/")
        url = httpx.URL(f"{root}/v2/corpora/{corpus_key(deployment, upstream_model)}/query")
        return self.client.request(url, httpx.Headers(headers), body, self.timeout_for(deployment, request))

    @staticmethod
    def _query(request: UpstreamRequest, body: RequestBody | None, deployment: Deployment, stream: bool) -> tuple[bytes, str]:
        query, text = chat_request_to_vectara_query(RequestBody.of(request, body).chat(), deployment, stream)
        return _encoder.encode(query), text

    async def chat(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        sent, query = self._query(request, body, deployment, False)
        upstream = self._request(deployment, request, upstream_model, sent, False)
        content = await self.fetch(upstream, deployment, vectara_error_to_upstream_error)
        try:
            summary = _response_decoder.decode(content).summary or ""
        except msgspec.DecodeError:
            raise invalid_answer() from None
        usage = query_usage(query, summary)
        return Completion(vectara_answer_to_chat_completion(summary, upstream_model, usage), usage)

    async def chat_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[StreamItem]:
        sent, query = self._query(request, body, deployment, True)
        upstream = self._request(deployment, request, upstream_model, sent, True)
        async with self.open_stream(upstream, deployment, vectara_error_to_upstream_error) as resp:
            translator = VectaraStreamTranslator(deployment, upstream_model, query, request.include_usage)
            async for item in translated_stream(sse_data(self.client.chunks(resp)), _event_decoder.decode, translator):
                yield item

    async def embeddings(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        raise invalid_request("provider vectara has no embeddings")
