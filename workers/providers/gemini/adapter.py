"""The Gemini API (an AI Studio key) and Vertex AI (a service account) adapters.

Both speak the same GenerateContent wire format (https://ai.google.dev/api/generate-content,
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.publishers.models/generateContent);
they differ in where the model lives and how the gateway proves who it is:
- Gemini: `{api_base}/v1beta/models/{model}:generateContent`, the key in `x-goog-api-key`;
- Vertex AI: `https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/
  publishers/google/models/{model}:generateContent` (the `aiplatform.googleapis.com` host for
  location "global"; a deployment's `api_base` replaces the host), an OAuth access token of the
  deployment's service account as a Bearer token (see oauth.py).
Streams use `:streamGenerateContent?alt=sse`; embeddings `:batchEmbedContents` (Gemini) and
`:predict` (Vertex AI text-embedding models).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType, UpstreamRequest
from workers.http_client import UpstreamClient
from workers.providers.answers import Completion, NativeItem, NativeUsage, StreamItem
from workers.providers.base import Provider
from workers.providers.errors import UpstreamError, credential_refused, invalid_answer, transport_error
from workers.providers.gemini.errors import google_error_to_upstream_error
from workers.providers.gemini.native import GoogleNativeUsage, with_model, with_vertex_scope
from workers.providers.gemini.oauth import TokenSource
from workers.providers.gemini.request import (
    chat_request_to_gemini,
    embedding_inputs,
    embeddings_to_gemini_batch,
    embeddings_to_vertex_predict,
)
from workers.providers.gemini.response import StreamConverter, embeddings_list, gemini_response_to_chat
from workers.providers.gemini.wire import (
    GenerateContentResponse,
    batch_embed_decoder,
    encode,
    predict_decoder,
    response_decoder,
)
from workers.providers.request_body import RequestBody
from workers.providers.sse import sse_data
from workers.usage import Usage

GEMINI_DEFAULT_BASE = "https://generativelanguage.googleapis.com"
VERTEX_DEFAULT_LOCATION = "us-central1"
_VERSIONS = ("/v1beta", "/v1", "/v1alpha", "/v1beta1")


def _split_version(base: str) -> tuple[str, str | None]:
    """`https://host/v1beta` -> (`https://host`, `v1beta`); a base without a version -> (base, None)."""
    base = base.rstrip("/")
    for version in _VERSIONS:
        if base.endswith(version):
            return base[: -len(version)], version[1:]
    return base, None


def _model_name(upstream_model: str) -> str:
    return upstream_model.removeprefix("models/")


class _Google(Provider):
    """The calls both Google APIs share; subclasses say where a model is and which credential
    goes with it."""

    def __init__(self, client: UpstreamClient, default_timeout: float, connect_timeout: float) -> None:
        super().__init__(client, default_timeout, connect_timeout)
        # (deployment id, model, method) -> (the deployment it was built from, URL)
        self._urls: dict[tuple[str, str, str], tuple[Deployment, httpx.URL]] = {}

    # ---- what a subclass says ----

    def model_url(self, deployment: Deployment, model: str, method: str) -> str:
        raise NotImplementedError

    async def credential(self, deployment: Deployment, request: UpstreamRequest) -> tuple[dict[str, str], str | None]:
        """(credential headers, a credential the deployment does not list itself, to scrub)."""
        raise NotImplementedError

    def refused(self, deployment: Deployment, token: str | None) -> None:
        """The upstream refused the credential (401/403)."""

    # ---- calls ----

    def _url(self, deployment: Deployment, model: str, method: str) -> httpx.URL:
        cached = self._urls.get((deployment.id, model, method))
        if cached is None or cached[0] is not deployment:
            cached = (deployment, httpx.URL(self.model_url(deployment, model, method)))
            self._urls[(deployment.id, model, method)] = cached
        return cached[1]

    async def _open(
        self, deployment: Deployment, request: UpstreamRequest, model: str, method: str, payload: dict[str, Any]
    ) -> tuple[httpx.Response, str | None]:
        """Send the call; an error answer is read and raised, a good one returned unread."""
        url = self._url(deployment, model, method)
        credential, token = await self.credential(deployment, request)
        headers = httpx.Headers({"content-type": "application/json", **dict(deployment.extra_headers), **credential})
        try:
            upstream = self.client.request(url, headers, encode(payload), self.timeout_for(deployment, request))
            resp = await self.client.send(upstream)
        except httpx.HTTPError as exc:
            raise transport_error(exc, deployment) from None
        if resp.status_code >= 400:
            try:
                content = await self.client.read(resp)
            except httpx.HTTPError as exc:
                raise transport_error(exc, deployment) from None
            finally:
                await resp.aclose()
            if resp.status_code in (401, 403):
                self.refused(deployment, token)
            raise google_error_to_upstream_error(resp.status_code, content, resp.headers, deployment, (token,) if token else ())
        return resp, token

    async def _post(
        self, deployment: Deployment, request: UpstreamRequest, model: str, method: str, payload: dict[str, Any]
    ) -> bytes:
        resp, _ = await self._open(deployment, request, model, method, payload)
        try:
            return await self.client.read(resp)
        except httpx.HTTPError as exc:
            raise transport_error(exc, deployment) from None
        finally:
            await resp.aclose()

    async def chat(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        model = _model_name(upstream_model)
        payload = chat_request_to_gemini(RequestBody.of(request, body).chat(), request.system_prompts)
        content = await self._post(deployment, request, model, "generateContent", payload)
        try:
            resp = response_decoder.decode(content)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        completion, usage = gemini_response_to_chat(resp, model)
        return Completion(encode(completion), usage)

    async def chat_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[StreamItem]:
        model = _model_name(upstream_model)
        payload = chat_request_to_gemini(RequestBody.of(request, body).chat(), request.system_prompts)
        resp, token = await self._open(deployment, request, model, "streamGenerateContent?alt=sse", payload)
        converter = StreamConverter(model)
        try:
            async for raw in sse_data(self.client.chunks(resp)):
                try:
                    event: GenerateContentResponse = response_decoder.decode(raw)
                except msgspec.DecodeError:
                    raise invalid_answer("the upstream sent an invalid stream event") from None
                if event.error is not None:
                    raise google_error_to_upstream_error(
                        event.error.code or 500, raw, resp.headers, deployment, (token,) if token else ()
                    )
                for chunk in converter.event(event):
                    yield chunk
        except httpx.HTTPError as exc:
            raise transport_error(exc, deployment) from None
        finally:
            await resp.aclose()
        if not converter.finished:
            raise invalid_answer("the upstream ended the stream early")
        if converter.usage is not None:
            yield converter.usage
            if request.include_usage:
                yield converter.usage_chunk(converter.usage)

    # ---- native passthrough ----

    def native_path(self, deployment: Deployment, path: str, upstream_model: str) -> str:
        return with_model(path, _model_name(upstream_model))

    def native_usage(self) -> NativeUsage | None:
        return GoogleNativeUsage()

    async def native(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[NativeItem]:
        if request.native is not None:
            call = msgspec.structs.replace(request.native, path=self.native_path(deployment, request.native.path, upstream_model))
            request = msgspec.structs.replace(request, native=call)
        async for item in super().native(deployment, request, upstream_model):
            yield item


class Gemini(_Google):
    """The Gemini API with an AI Studio key."""

    @staticmethod
    def _base(deployment: Deployment, model: str) -> tuple[str, str]:
        root, version = _split_version(deployment.base_for(model) or GEMINI_DEFAULT_BASE)
        return root, version or "v1beta"

    def model_url(self, deployment: Deployment, model: str, method: str) -> str:
        root, version = self._base(deployment, model)
        return f"{root}/{version}/models/{model}:{method}"

    def _key(self, deployment: Deployment) -> str:
        if deployment.api_key is None:
            raise UpstreamError(500, f"deployment {deployment.id} has no api_key", ErrorType.API, ErrorCode.INTERNAL)
        return deployment.api_key.reveal()

    async def credential(self, deployment: Deployment, request: UpstreamRequest) -> tuple[dict[str, str], str | None]:
        return {"x-goog-api-key": self._key(deployment)}, None

    async def embeddings(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        model = _model_name(upstream_model)
        texts, dimensions, as_base64 = embedding_inputs(RequestBody.of(request, body).embeddings())
        payload = embeddings_to_gemini_batch(texts, model, dimensions)
        content = await self._post(deployment, request, model, "batchEmbedContents", payload)
        try:
            answer = batch_embed_decoder.decode(content)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        # batchEmbedContents reports no token counts: the usage is left to the gateway's estimate.
        return Completion(encode(embeddings_list([e.values for e in answer.embeddings], model, as_base64, None)), None)

    def native_root(self, deployment: Deployment, upstream_model: str) -> str:
        return self._base(deployment, _model_name(upstream_model))[0]

    def native_headers(self, deployment: Deployment) -> dict[str, str]:
        return {**dict(deployment.extra_headers), "x-goog-api-key": self._key(deployment)}


class VertexAI(_Google):
    """Vertex AI's Google models, called as the deployment's service account."""

    def __init__(self, client: UpstreamClient, default_timeout: float, connect_timeout: float) -> None:
        super().__init__(client, default_timeout, connect_timeout)
        self.tokens = TokenSource(client)

    @staticmethod
    def location(deployment: Deployment) -> str:
        return str(deployment.option("vertex_location") or VERTEX_DEFAULT_LOCATION)

    def project(self, deployment: Deployment) -> str:
        project = deployment.option("vertex_project") or self.tokens.account(deployment).project_id
        if not project:
            raise UpstreamError(500, f"deployment {deployment.id} has no vertex_project", ErrorType.API, ErrorCode.INTERNAL)
        return str(project)

    def _root(self, deployment: Deployment) -> tuple[str, str]:
        if deployment.api_base:
            root, version = _split_version(deployment.api_base)
            return root, version or "v1"
        location = self.location(deployment)
        host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
        return f"https://{host}", "v1"

    def model_url(self, deployment: Deployment, model: str, method: str) -> str:
        root, version = self._root(deployment)
        scope = f"projects/{self.project(deployment)}/locations/{self.location(deployment)}"
        return f"{root}/{version}/{scope}/publishers/google/models/{model}:{method}"

    async def credential(self, deployment: Deployment, request: UpstreamRequest) -> tuple[dict[str, str], str | None]:
        account = self.tokens.account(deployment)
        token = await self.tokens.token(deployment, account, self.timeout_for(deployment, request))
        return {"authorization": f"Bearer {token}"}, token

    def refused(self, deployment: Deployment, token: str | None) -> None:
        self.tokens.invalidate(self.tokens.account(deployment), token)

    async def embeddings(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        model = _model_name(upstream_model)
        texts, dimensions, as_base64 = embedding_inputs(RequestBody.of(request, body).embeddings())
        content = await self._post(deployment, request, model, "predict", embeddings_to_vertex_predict(texts, dimensions))
        try:
            answer = predict_decoder.decode(content)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        vectors = [p.embeddings.values if p.embeddings else [] for p in answer.predictions]
        stats = [p.embeddings.statistics for p in answer.predictions if p.embeddings and p.embeddings.statistics]
        tokens = int(sum(s.token_count for s in stats)) if stats else None
        answer_body = embeddings_list(vectors, model, as_base64, tokens)
        return Completion(encode(answer_body), Usage(prompt_tokens=tokens) if tokens is not None else None)

    # ---- native passthrough ----

    def native_root(self, deployment: Deployment, upstream_model: str) -> str:
        return self._root(deployment)[0]

    def native_path(self, deployment: Deployment, path: str, upstream_model: str) -> str:
        path = with_vertex_scope(path, self.project(deployment), self.location(deployment))
        return super().native_path(deployment, path, upstream_model)

    def native_headers(self, deployment: Deployment) -> dict[str, str]:
        token = self.tokens.cached(self.tokens.account(deployment))
        if token is None:  # (`native` fetches it first: only a token that expired in between)
            raise credential_refused(deployment, 401)
        return {**dict(deployment.extra_headers), "authorization": f"Bearer {token}"}

    async def native(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[NativeItem]:
        """native_headers is synchronous: the access token is fetched (or found cached) first."""
        account = self.tokens.account(deployment)
        token = await self.tokens.token(deployment, account, self.timeout_for(deployment, request))
        answered = False
        try:
            async for item in super().native(deployment, request, upstream_model):
                answered = True
                yield item
        except UpstreamError as exc:
            if not answered and exc.status == 502 and exc.code == ErrorCode.UPSTREAM_ERROR:
                self.tokens.invalidate(account, token)  # (refused, most likely: fetch a fresh one next time)
            raise
