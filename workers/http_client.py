"""The worker's one upstream HTTP client: httpx's Request and Response on an aiohttp transport.

httpx's own connection pool degrades under concurrency (about 460 requests/s with a p99 over
600 ms at 64 in flight, against 4,000 requests/s for aiohttp on the same machine; see
bench/http_clients.py), so requests go through `httpx_aiohttp.AiohttpTransport`.

Requests are handed to the transport directly rather than through `httpx.AsyncClient`: the client
costs ~0.4 ms of CPU per call on top of the transport (it re-parses and merges the URL and headers,
runs the cookie jar, auth, redirect and event-hook machinery, and re-chunks the body through its
decoders), which was a third of a worker's CPU per request. An upstream call needs none of it:
no redirects are followed, and cookies from one upstream answer must not reach the next caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import httpx
from httpx_aiohttp import AiohttpTransport


class UpstreamClient:
    def __init__(self, max_connections: int) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.transport = AiohttpTransport(limits=limits)

    @staticmethod
    def request(
        url: httpx.URL, headers: httpx.Headers, body: bytes, timeout: httpx.Timeout, method: str = "POST"
    ) -> httpx.Request:
        """A POST of `body` (or `method`). Pass a pre-built URL and headers (parsing a URL string
        costs ~30 us)."""
        # Given as a stream, httpx adds no Host / Content-Length of its own (aiohttp sets both);
        # read() makes the body available as `request.content`, which the transport sends.
        request = httpx.Request(
            method, url, headers=headers, stream=httpx.ByteStream(body), extensions={"timeout": timeout.as_dict()}
        )
        request.read()
        return request

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The response with its body not yet read: read it (`read` or `chunks`), then `aclose()` it."""
        return await self.transport.handle_async_request(request)

    @staticmethod
    def chunks(response: httpx.Response) -> AsyncIterator[bytes]:
        """The body as it arrives. httpx's `aiter_bytes()` passes every chunk through its decoders
        and two re-chunkers; only a compressed body needs that."""
        if "content-encoding" in response.headers:
            return response.aiter_bytes()
        return aiter(cast(httpx.AsyncByteStream, response.stream))  # (an async transport's stream)

    @classmethod
    async def read(cls, response: httpx.Response) -> bytes:
        return b"".join([chunk async for chunk in cls.chunks(response)])

    async def aclose(self) -> None:
        await self.transport.aclose()
