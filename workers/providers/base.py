"""What every provider adapter offers the worker.

An adapter translates an OpenAI-format request into its provider's wire format, calls it with
the worker's shared upstream client (httpx requests and responses), and translates the answer
back: a whole OpenAI-format body, or a stream of OpenAI `chat.completion.chunk` JSON documents,
plus the usage the provider reported. It reads the request's body through the `RequestBody` the
worker decoded once (an adapter called without one makes its own), and its provider's error
answers through `workers.providers.errors`, which decides what the client gets.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Protocol

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType, UpstreamRequest
from workers.http_client import UpstreamClient
from workers.providers.answers import Completion, NativeItem, NativeUsage, StreamItem
from workers.providers.completions_chat import completions_stream_via_chat, completions_via_chat
from workers.providers.errors import ErrorReader, UpstreamError, invalid_answer, invalid_request, transport_error
from workers.providers.messages_body import estimated_input_tokens
from workers.providers.native import forward
from workers.providers.request_body import RequestBody
from workers.usage import Usage

_json_encoder = msgspec.json.Encoder()


async def fetch_body(client: UpstreamClient, upstream: httpx.Request, deployment: Deployment, to_error: ErrorReader) -> bytes:
    """A whole answer's body; a failure below HTTP, or an error status read by `to_error`, raised
    as the UpstreamError the client gets."""
    try:
        resp = await client.send(upstream)
        try:
            content = await client.read(resp)
        finally:
            await resp.aclose()
    except httpx.HTTPError as exc:
        raise transport_error(exc, deployment) from None
    if resp.status_code >= 400:
        raise to_error(resp.status_code, content, resp.headers, deployment)
    return content


class Provider(ABC):
    def __init__(self, client: UpstreamClient, default_timeout: float, connect_timeout: float) -> None:
        self.client = client
        self.default_timeout = default_timeout
        self.connect_timeout = connect_timeout
        # key -> (the deployment they were built from, URL, headers): parsed once, not per request.
        # A credential set at run time replaces the Deployment object, which rebuilds its entries.
        self._endpoints: dict[tuple[str, ...], tuple[Deployment, httpx.URL, httpx.Headers]] = {}

    def headers(self, deployment: Deployment) -> dict[str, str]:
        """The headers of every call to `deployment` (adapters that use `endpoint_request`)."""
        raise NotImplementedError

    def endpoint_request(
        self, deployment: Deployment, request: UpstreamRequest, key: tuple[str, ...], url: Callable[[], str], body: bytes
    ) -> httpx.Request:
        """A POST of `body` to the URL `url()` builds, with `headers(deployment)`; both are built
        once per `key` (which starts with the deployment id) and deployment object."""
        cached = self._endpoints.get(key)
        if cached is None or cached[0] is not deployment:
            cached = (deployment, httpx.URL(url()), httpx.Headers(self.headers(deployment)))
            self._endpoints[key] = cached
        return self.client.request(cached[1], cached[2], body, self.timeout_for(deployment, request))

    def timeout_for(self, deployment: Deployment, request: UpstreamRequest) -> httpx.Timeout:
        budget = min(deployment.timeout or self.default_timeout, max(request.deadline - time.time(), 0.001))
        return httpx.Timeout(budget, connect=min(self.connect_timeout, budget))

    async def fetch(self, upstream: httpx.Request, deployment: Deployment, to_error: ErrorReader) -> bytes:
        return await fetch_body(self.client, upstream, deployment, to_error)

    @asynccontextmanager
    async def open_stream(
        self, upstream: httpx.Request, deployment: Deployment, to_error: ErrorReader
    ) -> AsyncIterator[httpx.Response]:
        """A streamed answer, unread: an error status is read and raised by `to_error`; failures
        below HTTP while it is read are raised as UpstreamError; it is closed on the way out."""
        try:
            resp = await self.client.send(upstream)
        except httpx.HTTPError as exc:
            raise transport_error(exc, deployment) from None
        try:
            if resp.status_code >= 400:
                raise to_error(resp.status_code, await self.client.read(resp), resp.headers, deployment)
            yield resp
        except httpx.HTTPError as exc:
            raise transport_error(exc, deployment) from None
        finally:
            await resp.aclose()

    @abstractmethod
    async def chat(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion: ...

    @abstractmethod
    def chat_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[StreamItem]: ...

    @abstractmethod
    async def embeddings(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion: ...

    # ---- audio: OpenAI's audio API (the OpenAI family and Azure offer it) ----------------------

    def transcription(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[NativeItem]:
        """Speech to text (an `AudioUpload`): the answer's head, its bytes, then the usage."""
        raise self.unsupported(deployment, "audio transcriptions")

    def speech(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[NativeItem]:
        """Text to speech: the answer's head, the audio's bytes as they arrive, then the usage."""
        raise self.unsupported(deployment, "speech")

    def unsupported(self, deployment: Deployment, operation: str) -> UpstreamError:
        """The 400 for an operation this provider does not offer."""
        return invalid_request(f"provider {deployment.provider} (deployment {deployment.id}) does not offer {operation}")

    # ---- legacy completions (translated to chat unless an adapter serves them itself), images,
    # moderations and rerank: not offered unless an adapter says otherwise ----

    async def completions(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        return await completions_via_chat(self, deployment, request, upstream_model, RequestBody.of(request, body))

    def completions_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[StreamItem]:
        return completions_stream_via_chat(self, deployment, request, upstream_model, RequestBody.of(request, body))

    async def images(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        raise self.unsupported(deployment, "image generation")

    async def moderations(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        raise self.unsupported(deployment, "moderations")

    async def rerank(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        raise self.unsupported(deployment, "rerank")

    # ---- Anthropic's count_tokens (`/v1/messages/count_tokens`, an Anthropic Messages body) ----

    async def count_tokens(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        """`{"input_tokens": N}`: the offline tokenizer's count of the request's text in the
        upstream model's encoding (Anthropic's adapter asks Anthropic instead). Counting costs
        nothing: the usage has no tokens, and says the count was the gateway's own."""
        # (in a thread: the tokenizer loads on first use, and a long prompt takes a while)
        tokens = await asyncio.to_thread(estimated_input_tokens, request.body, request.system_prompts, upstream_model)
        return Completion(_json_encoder.encode({"input_tokens": tokens}), Usage(estimated=True))

    # ---- native passthrough (see workers/providers/native.py, which drives these hooks) ----

    def native_root(self, deployment: Deployment, upstream_model: str) -> str:
        """The URL a client's native path is appended to (the provider's API root)."""
        return deployment.base_for(upstream_model).rstrip("/")

    def native_headers(self, deployment: Deployment) -> dict[str, str]:
        """The gateway's credential in the provider's own header(s), plus any it always needs."""
        raise UpstreamError(404, f"provider {deployment.provider} has no native route", ErrorType.NOT_FOUND, ErrorCode.NOT_FOUND)

    def native_body(self, body: bytes, upstream_model: str) -> bytes:
        """The client's native body as the upstream gets it (the model name swapped in, ...)."""
        return body

    def native_usage(self) -> NativeUsage | None:
        """A reader of the provider's usage fields, or None when its native answers carry none."""
        return None

    async def native(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[NativeItem]:
        async for item in forward(self, deployment, request, upstream_model):
            yield item


class EventTranslator(Protocol):
    """Turns one decoded provider stream event into what `chat_stream` yields; `finished` once
    the provider's proper end event arrived."""

    finished: bool

    def feed(self, event: Any) -> Iterable[StreamItem]: ...


async def translated_stream(
    data: AsyncIterator[bytes], decode: Callable[[bytes], Any], translator: EventTranslator
) -> AsyncIterator[StreamItem]:
    """The OpenAI chunks (and usage) of a provider's SSE stream: each event's `data` decoded and
    fed to `translator`. A `[DONE]` marker is skipped; an undecodable event or a stream that
    ends before its end event is a 502."""
    async for raw in data:
        if raw == b"[DONE]":
            continue
        try:
            event = decode(raw)
        except msgspec.DecodeError:
            raise invalid_answer("the upstream sent an invalid stream event") from None
        for item in translator.feed(event):
            yield item
        if translator.finished:
            return
    raise invalid_answer("the upstream ended the stream early")


class StallGuard:
    """Ends a stream whose upstream sends nothing for `seconds` (504): one timeout around the whole
    stream, pushed back by `touch()` on every item (a timer reschedule, ~1 us, instead of a new
    timeout context and generator hop per chunk)."""

    __slots__ = ("_cm", "_loop", "deployment", "seconds")

    def __init__(self, seconds: float | None, deployment: Deployment) -> None:
        self.seconds = seconds or 0.0
        self.deployment = deployment
        self._cm: asyncio.Timeout | None = None
        self._loop = asyncio.get_running_loop()

    async def __aenter__(self) -> StallGuard:
        if self.seconds:
            self._cm = asyncio.timeout(self.seconds)
            await self._cm.__aenter__()
        return self

    def touch(self) -> None:
        if self._cm is not None:
            self._cm.reschedule(self._loop.time() + self.seconds)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if self._cm is None:
            return False
        try:
            await self._cm.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            raise UpstreamError(
                504,
                f"the upstream of deployment {self.deployment.id} sent nothing for {self.seconds:g} s: the stream was ended",
                ErrorType.TIMEOUT,
                ErrorCode.TIMEOUT,
            ) from None
        return False
