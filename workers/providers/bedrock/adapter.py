"""The Bedrock adapter: OpenAI chat and embeddings over the Bedrock runtime, signed with SigV4.

Chat goes to Converse / ConverseStream (one request shape for every model family Bedrock hosts);
embeddings go to InvokeModel with Amazon Titan's body. The URL is
`https://bedrock-runtime.{region}.amazonaws.com/model/{modelId}/{action}` unless the deployment
names an `api_base` (a VPC endpoint, a proxy, or a test's fake), which replaces that root; the
request is signed for whichever host it goes to. Credentials come from the deployment's
`aws_access_key_id`, `aws_secret_access_key` and optional `aws_session_token`; the region from
`aws_region_name` (or the standard endpoint's host). There is no native route.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx

from llmgw.config import Deployment, Secret
from llmgw.contracts import ErrorCode, ErrorType, UpstreamRequest
from workers.http_client import UpstreamClient
from workers.providers.answers import Completion, StreamItem
from workers.providers.base import Provider
from workers.providers.bedrock.converse_request import chat_request_to_converse, encode_converse
from workers.providers.bedrock.converse_response import StreamTranslator, converse_response_to_chat, decode_response
from workers.providers.bedrock.embeddings import (
    decode_titan,
    embeddings_request_to_titan,
    is_titan_embedding_model,
    titan_to_embeddings,
)
from workers.providers.bedrock.errors import bedrock_http_error, stream_exception
from workers.providers.bedrock.eventstream import EventStreamDecoder, EventStreamError
from workers.providers.bedrock.sigv4 import AwsCredentials, signed_headers
from workers.providers.errors import UpstreamError, invalid_answer, invalid_request
from workers.providers.request_body import RequestBody
from workers.usage import Usage

SERVICE = "bedrock"
EVENT_STREAM = "application/vnd.amazon.eventstream"
EMBEDDING_CALLS_AT_ONCE = 8
MAX_CACHED_URLS = 1024
# Characters a path segment may hold as they are (RFC 3986 pchar, less "+"): the HTTP client's URL
# library leaves them and their escapes as they are, so the path signed is the path sent.
_PATH_SAFE = ":@!$&'()*,;="
_ENDPOINT_REGION = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")


def _plain(value: object) -> str | None:
    if isinstance(value, Secret):
        value = value.reveal()
    return str(value) if value else None


def _config_error(message: str) -> UpstreamError:
    return UpstreamError(500, message, ErrorType.API, ErrorCode.INTERNAL)


def model_path(model_id: str, action: str) -> str:
    """`/model/{modelId}/{action}` with the id percent-encoded as one segment (an ARN's `/` too)."""
    return f"/model/{quote(model_id, safe=_PATH_SAFE)}/{action}"


def aws_credentials(deployment: Deployment) -> AwsCredentials:
    key_id = _plain(deployment.option("aws_access_key_id"))
    secret = _plain(deployment.option("aws_secret_access_key"))
    if not key_id or not secret:
        raise _config_error(f"deployment {deployment.id} has no aws_access_key_id / aws_secret_access_key")
    return AwsCredentials(key_id, secret, _plain(deployment.option("aws_session_token")))


def aws_region(deployment: Deployment) -> str:
    region = _plain(deployment.option("aws_region_name"))
    if region:
        return region
    match = _ENDPOINT_REGION.search(deployment.api_base or "")
    if match:
        return match.group(1)
    raise _config_error(f"deployment {deployment.id} has no aws_region_name")


class Bedrock(Provider):
    def __init__(self, client: UpstreamClient, default_timeout: float, connect_timeout: float) -> None:
        super().__init__(client, default_timeout, connect_timeout)
        # (deployment id, model, action) -> (the deployment it was built from, URL, host, path)
        self._urls: dict[tuple[str, str, str], tuple[Deployment, httpx.URL, str, str]] = {}

    def endpoint(self, deployment: Deployment, model_id: str, action: str) -> tuple[httpx.URL, str, str]:
        """(URL, host header, path as sent) of one call."""
        cached = self._urls.get((deployment.id, model_id, action))
        if cached is None or cached[0] is not deployment:
            root = deployment.base_for(model_id).rstrip("/") or f"https://bedrock-runtime.{aws_region(deployment)}.amazonaws.com"
            url = httpx.URL(root + model_path(model_id, action))
            path = url.raw_path.decode("ascii").split("?", 1)[0]
            cached = (deployment, url, url.netloc.decode("ascii"), path)
            if len(self._urls) >= MAX_CACHED_URLS:  # (a wildcard deployment may see any model name)
                self._urls.clear()
            self._urls[(deployment.id, model_id, action)] = cached
        return cached[1], cached[2], cached[3]

    def build_request(
        self, deployment: Deployment, request: UpstreamRequest, model_id: str, action: str, body: bytes, accept: str
    ) -> httpx.Request:
        url, host, path = self.endpoint(deployment, model_id, action)
        headers = {"content-type": "application/json", "accept": accept, **dict(deployment.extra_headers)}
        headers.update(signed_headers(aws_credentials(deployment), "POST", host, path, body, aws_region(deployment), SERVICE))
        return self.client.request(url, httpx.Headers(headers), body, self.timeout_for(deployment, request))

    async def _post(self, deployment: Deployment, request: UpstreamRequest, model_id: str, action: str, body: bytes) -> bytes:
        req = self.build_request(deployment, request, model_id, action, body, "application/json")
        return await self.fetch(req, deployment, bedrock_http_error)

    async def chat(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        sent = encode_converse(chat_request_to_converse(RequestBody.of(request, body).chat(), request.system_prompts))
        content = await self._post(deployment, request, upstream_model, "converse", sent)
        completion, usage = converse_response_to_chat(decode_response(content), upstream_model)
        return Completion(completion, usage)

    async def chat_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[StreamItem]:
        sent = encode_converse(chat_request_to_converse(RequestBody.of(request, body).chat(), request.system_prompts))
        req = self.build_request(deployment, request, upstream_model, "converse-stream", sent, EVENT_STREAM)
        async with self.open_stream(req, deployment, bedrock_http_error) as resp:
            try:
                translator = StreamTranslator(upstream_model)
                decoder = EventStreamDecoder()
                async for data in self.client.chunks(resp):
                    for message in decoder.feed(data):
                        kind = message.headers.get(":message-type")
                        if kind in ("exception", "error"):
                            raise stream_exception(message.headers, message.payload, deployment)
                        if kind != "event":
                            continue
                        chunk = translator.event(str(message.headers.get(":event-type", "")), message.payload)
                        if chunk is not None:
                            yield chunk
                        usage = translator.usage
                        if translator.finished and usage is not None:
                            yield usage
                            if request.include_usage:
                                yield translator.usage_chunk(usage)
                            return
                raise invalid_answer("Bedrock ended the stream early")
            except EventStreamError as exc:
                raise invalid_answer(f"Bedrock sent a damaged event stream ({exc})") from None

    async def embeddings(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        if not is_titan_embedding_model(upstream_model):
            raise invalid_request(f"Bedrock model {upstream_model} has no embeddings here (Amazon Titan text embeddings only)")
        bodies, as_base64 = embeddings_request_to_titan(RequestBody.of(request, body).embeddings())
        gate = asyncio.Semaphore(EMBEDDING_CALLS_AT_ONCE)

        async def one(titan_body: bytes) -> bytes:
            async with gate:
                return await self._post(deployment, request, upstream_model, "invoke", titan_body)

        tasks = [asyncio.ensure_future(one(b)) for b in bodies]
        try:
            contents = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        completion, tokens = titan_to_embeddings([decode_titan(c) for c in contents], upstream_model, as_base64)
        return Completion(completion, Usage(prompt_tokens=tokens))
