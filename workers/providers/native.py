"""Native passthrough: a client's request in the provider's own wire format, forwarded as is.

The edge has checked the path and kept only harmless client headers; here the gateway's credential
goes in (the adapter's `native_headers`), the model name is swapped (`native_body`), and the
answer comes back byte for byte: a whole body, or an event stream relayed as it arrives. The
adapter's `NativeUsage` reads the provider's own usage fields on the way through, so a native
call is metered like any other; an answer whose usage cannot be read is metered from its bytes,
marked estimated. `forward` needs only the hooks of `NativeTarget`, which every
`Provider` has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType, UpstreamRequest
from workers.http_client import UpstreamClient
from workers.providers.answers import NativeHead, NativeItem, NativeUsage
from workers.providers.errors import UpstreamError, credential_refused, scrub_bytes, transport_error
from workers.providers.sse import SseData
from workers.usage import Usage, estimated_usage

# Answer headers a client gets from the upstream (the rest are the gateway's own or hop-by-hop).
_KEPT_HEADERS = ("content-type", "retry-after", "request-id", "openai-processing-ms", "openai-version")
_KEPT_PREFIXES = ("anthropic-", "x-goog-")
# Paths the providers do not bill (token counting): their answers carry no usage, and none is estimated.
FREE_PATH_ENDINGS = ("/count_tokens", ":countTokens")
_MAX_UNPARSED_STREAM = 8 * 1024 * 1024  # a non-SSE stream is kept for its usage up to this size


class NativeTarget(Protocol):
    """What `forward` asks of an adapter (see `Provider`'s native hooks)."""

    client: UpstreamClient

    def native_root(self, deployment: Deployment, upstream_model: str) -> str: ...

    def native_headers(self, deployment: Deployment) -> dict[str, str]: ...

    def native_body(self, body: bytes, upstream_model: str) -> bytes: ...

    def native_usage(self) -> NativeUsage | None: ...

    def timeout_for(self, deployment: Deployment, request: UpstreamRequest) -> httpx.Timeout: ...


def kept_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers.items() if name in _KEPT_HEADERS or name.startswith(_KEPT_PREFIXES)]


async def forward(
    target: NativeTarget, deployment: Deployment, request: UpstreamRequest, upstream_model: str
) -> AsyncIterator[NativeItem]:
    call = request.native
    if call is None:
        raise UpstreamError(500, "a native request without its call", ErrorType.API, ErrorCode.INTERNAL)
    url = target.native_root(deployment, upstream_model) + call.path + (f"?{call.query}" if call.query else "")
    headers = dict(call.headers)
    headers.update(target.native_headers(deployment))
    headers["accept-encoding"] = "identity"  # bytes are relayed as they come: no re-encoding
    body = target.native_body(request.body, upstream_model) if request.body else b""
    client = target.client
    upstream = client.request(httpx.URL(url), httpx.Headers(headers), body, target.timeout_for(deployment, request), call.method)
    try:
        resp = await client.send(upstream)
    except httpx.HTTPError as exc:
        raise transport_error(exc, deployment) from None
    try:
        if resp.status_code in (401, 403):
            raise credential_refused(deployment, resp.status_code)
        event_stream = resp.headers.get("content-type", "").startswith("text/event-stream")
        streaming = event_stream or (request.stream and resp.status_code < 400)
        yield NativeHead(resp.status_code, kept_headers(resp.headers), streaming)
        tracker = target.native_usage() if resp.status_code < 400 else None
        answered = 0  # bytes of the answer, for an estimate when its usage cannot be read
        if streaming:
            parser = SseData() if event_stream else None
            kept: list[bytes] = []
            size = 0
            async for chunk in client.chunks(resp):
                answered += len(chunk)
                if tracker is not None:
                    if parser is not None:
                        for data in parser.feed(chunk):
                            tracker.event(data)
                    elif size + len(chunk) <= _MAX_UNPARSED_STREAM:
                        kept.append(chunk)
                        size += len(chunk)
                yield chunk
            if tracker is not None and parser is None:
                tracker.body(b"".join(kept))
        else:
            content = await client.read(resp)
            answered = len(content)
            if tracker is not None:
                tracker.body(content)
            yield content if resp.status_code < 400 else scrub_bytes(content, deployment)
        if tracker is not None and tracker.usage is not None:
            yield tracker.usage
        elif resp.status_code < 400 and not call.path.endswith(FREE_PATH_ENDINGS):
            yield estimated_native_usage(len(body), answered)
    except httpx.HTTPError as exc:
        raise transport_error(exc, deployment) from None
    finally:
        await resp.aclose()


def estimated_native_usage(prompt_bytes: int, answer_bytes: int) -> Usage:
    """What a native call used when its answer says nothing of it (a path whose answers carry no
    usage, an answer that is not JSON): four bytes a token each way, at least one token for a
    request or answer that has any bytes, recorded as estimated (never 0 tokens at $0)."""
    return estimated_usage(-(-prompt_bytes // 4), -(-answer_bytes // 4))


_body_decoder = msgspec.json.Decoder(dict[str, Any])
_body_encoder = msgspec.json.Encoder()


def body_with_model(body: bytes, upstream_model: str) -> bytes:
    """A native body with the deployment's model name in place of the client's `model`; a body
    that is not a JSON object, or names no model, passes as it is (the upstream answers for it)."""
    try:
        data = _body_decoder.decode(body)
    except msgspec.DecodeError:
        return body
    if not isinstance(data.get("model"), str):
        return body
    data["model"] = upstream_model
    return _body_encoder.encode(data)
