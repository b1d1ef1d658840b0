"""Native passthrough: a client's request in the provider's own wire format, forwarded as is.

The edge has checked the path and kept only harmless client headers; here the gateway's credential
goes in (the adapter's `native_headers`), the model name is swapped (`native_body`), and the
answer comes back byte for byte: a whole body, or an event stream relayed as it arrives. The
adapter's `NativeUsage` reads the provider's own usage fields on the way through, so a native
call is metered like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType, UpstreamRequest
from workers.providers.base import NativeHead, NativeItem, UpstreamError, scrub_bytes, transport_error

if TYPE_CHECKING:
    from workers.providers.base import Provider

# Answer headers a client gets from the upstream (the rest are the gateway's own or hop-by-hop).
_KEPT_HEADERS = ("content-type", "retry-after", "request-id", "openai-processing-ms", "openai-version")
_KEPT_PREFIXES = ("anthropic-", "x-goog-")
_MAX_UNPARSED_STREAM = 8 * 1024 * 1024  # a non-SSE stream is kept for its usage up to this size


class SseData:
    """The `data:` payloads of a server-sent event stream, fed in arbitrary byte chunks."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._pending + chunk).splitlines(keepends=True)
        self._pending = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        return [line[5:].strip() for line in lines if line.startswith(b"data:")]


def kept_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers.items() if name in _KEPT_HEADERS or name.startswith(_KEPT_PREFIXES)]


async def forward(
    provider: Provider, deployment: Deployment, request: UpstreamRequest, upstream_model: str
) -> AsyncIterator[NativeItem]:
    call = request.native
    if call is None:
        raise UpstreamError(500, "a native request without its call", ErrorType.API, ErrorCode.INTERNAL)
    url = provider.native_root(deployment, upstream_model) + call.path + (f"?{call.query}" if call.query else "")
    headers = dict(call.headers)
    headers.update(provider.native_headers(deployment))
    headers["accept-encoding"] = "identity"  # bytes are relayed as they come: no re-encoding
    body = provider.native_body(request.body, upstream_model) if request.body else b""
    upstream = provider.client.request(
        httpx.URL(url), httpx.Headers(headers), body, provider.timeout_for(deployment, request), call.method
    )
    try:
        resp = await provider.client.send(upstream)
    except httpx.HTTPError as exc:
        raise transport_error(exc, deployment) from None
    try:
        if resp.status_code in (401, 403):
            raise UpstreamError(
                502,
                f"the upstream refused the credential of deployment {deployment.id} ({resp.status_code})",
                ErrorType.API,
                ErrorCode.UPSTREAM_ERROR,
            )
        event_stream = resp.headers.get("content-type", "").startswith("text/event-stream")
        streaming = event_stream or (request.stream and resp.status_code < 400)
        yield NativeHead(resp.status_code, kept_headers(resp.headers), streaming)
        tracker = provider.native_usage() if resp.status_code < 400 else None
        if streaming:
            parser = SseData() if event_stream else None
            kept: list[bytes] = []
            size = 0
            async for chunk in provider.client.chunks(resp):
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
            content = await provider.client.read(resp)
            if tracker is not None:
                tracker.body(content)
            yield content if resp.status_code < 400 else scrub_bytes(content, deployment)
        if tracker is not None and tracker.usage is not None:
            yield tracker.usage
    except httpx.HTTPError as exc:
        raise transport_error(exc, deployment) from None
    finally:
        await resp.aclose()
