"""A small, fast HTTP/1.1 server on asyncio protocols, just enough for the fake upstream.

Supports keep-alive and pipelined requests, Content-Length and chunked request bodies,
`Expect: 100-continue`, fixed-length responses and chunked streaming responses (for SSE).
A handler task is cancelled when its client disconnects. It has no TLS, no HTTP/2 and no
upgrades; it is a benchmark/test fixture, about half the CPU per request of aiohttp.web.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    query: str = ""  # the raw query string (without `?`)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamResponse:
    """Sent with chunked transfer encoding, one chunk per item `events` yields."""

    events: AsyncIterator[bytes]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class DropConnection(Exception):
    """Raised by a StreamResponse's iterator to close the connection without finishing the body."""


Handler = Callable[[Request], Awaitable["Response | StreamResponse"]]


class BadHttp(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


_STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}" for status in HTTPStatus}


def _head(status: int, headers: dict[str, str], framing: str) -> bytes:
    lines = [_STATUS_LINES.get(status, f"HTTP/1.1 {status} Unknown")]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append(framing)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at `start`; returns (body, end offset) or None if incomplete."""
    body = bytearray()
    pos = start
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
        except ValueError:
            raise BadHttp(400) from None
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", pos - 2)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < pos + size + 2:
            return None
        body += buffer[pos : pos + size]
        if len(body) > MAX_BODY_BYTES:
            raise BadHttp(413)
        pos += size + 2


class HttpProtocol(asyncio.Protocol):
    def __init__(self, handler: Handler, connections: set[HttpProtocol]) -> None:
        self.handler = handler
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.task: asyncio.Task | None = None
        self.sent_continue = False
        self.writable: asyncio.Future | None = None

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.connections.discard(self)
        self.transport = None
        if self.task is not None:
            self.task.cancel()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.task is None:
            self._next_request()

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    # -- request handling --------------------------------------------------------------
    def _next_request(self) -> None:
        if not self.buffer:
            return
        try:
            parsed = self._parse()
        except BadHttp as exc:
            self._write_response(Response(exc.status), keep_alive=False)
            return
        if parsed is not None:
            request, keep_alive = parsed
            self.task = asyncio.get_running_loop().create_task(self._serve(request, keep_alive))

    def _parse(self) -> tuple[Request, bool] | None:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise BadHttp(431)
            return None
        lines = bytes(self.buffer[:head_end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        except ValueError:
            raise BadHttp(400) from None
        body_start = head_end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            decoded = _parse_chunked(self.buffer, body_start)
        else:
            decoded = self._fixed_body(headers, body_start)
        if decoded is None:
            if headers.get("expect", "").lower() == "100-continue" and not self.sent_continue:
                self.sent_continue = True
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        body, end = decoded
        del self.buffer[:end]
        self.sent_continue = False
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        path, _, query = target.partition("?")
        return Request(method, path, headers, body, query), keep_alive

    def _fixed_body(self, headers: dict[str, str], start: int) -> tuple[bytes, int] | None:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadHttp(400) from None
        if length < 0:
            raise BadHttp(400)
        if length > MAX_BODY_BYTES:
            raise BadHttp(413)
        end = start + length
        if len(self.buffer) < end:
            return None
        return bytes(self.buffer[start:end]), end

    async def _serve(self, request: Request, keep_alive: bool) -> None:
        try:
            response = await self.handler(request)
        except Exception:
            response = Response(500, b"internal error in the fake server")
        if isinstance(response, StreamResponse):
            keep_alive = await self._write_stream(response, keep_alive)
        else:
            self._write_response(response, keep_alive)
        self.task = None
        if keep_alive and self.transport is not None:
            self._next_request()

    def _write_response(self, response: Response, keep_alive: bool) -> None:
        if self.transport is None:
            return
        headers = response.headers if keep_alive else {**response.headers, "Connection": "close"}
        self.transport.write(_head(response.status, headers, f"Content-Length: {len(response.body)}") + response.body)
        if not keep_alive:
            self.transport.close()

    async def _write_stream(self, response: StreamResponse, keep_alive: bool) -> bool:
        """Returns whether the connection is still usable for the next request."""
        if self.transport is None:
            return False
        headers = response.headers if keep_alive else {**response.headers, "Connection": "close"}
        self.transport.write(_head(response.status, headers, "Transfer-Encoding: chunked"))
        try:
            async for event in response.events:
                if self.transport is None:
                    return False
                self.transport.write(b"%x\r\n%s\r\n" % (len(event), event))
                if self.writable is not None:
                    await self.writable
        except Exception:  # DropConnection, or a bug in the handler: end the stream unfinished
            if self.transport is not None:
                self.transport.close()
            return False
        if self.transport is None:
            return False
        self.transport.write(b"0\r\n\r\n")
        if not keep_alive:
            self.transport.close()
        return keep_alive


class HttpServer:
    """Listening server; `port` is the bound port (useful when started with port 0)."""

    def __init__(self, server: asyncio.Server, connections: set[HttpProtocol]) -> None:
        self._server = server
        self._connections = connections
        self.port: int = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._server.close()
        for protocol in list(self._connections):
            if protocol.transport is not None:
                protocol.transport.abort()
        await self._server.wait_closed()


async def serve(handler: Handler, host: str, port: int) -> HttpServer:
    connections: set[HttpProtocol] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(handler, connections), host, port, backlog=2048)
    return HttpServer(server, connections)


# ---- what every fake upstream shares: an in-process handle and the CLI ------------------------


class FakeServerHandle:
    """A running in-process fake upstream: its app (whose `stats` tests read) and its server.
    `base_url` is the URL a deployment's `api_base` points at (the root plus `api_path`)."""

    def __init__(self, app, server: HttpServer, host: str, api_path: str = "") -> None:
        self.app = app
        self.server = server
        self.host = host
        self.port = server.port
        self.api_path = api_path

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + self.api_path

    @property
    def stats(self):
        return self.app.stats

    async def stop(self) -> None:
        await self.server.close()


async def start_app(app, host: str, port: int, api_path: str = "") -> tuple[FakeServerHandle, int]:
    """Serve `app.handle` on the running loop; returns (handle, actual port)."""
    handle = FakeServerHandle(app, await serve(app.handle, host, port), host, api_path)
    return handle, handle.port


def suffix_ms(name: str, prefix: str) -> float | None:
    """The milliseconds a fake's model (or corpus) name asks for: `fake-slow-250` with prefix
    `fake-slow-` -> 250.0; None when the name does not match or the number does not parse."""
    if not name.startswith(prefix):
        return None
    try:
        return max(0.0, float(name[len(prefix) :]))
    except ValueError:
        return None


def fake_cli(
    prog: str,
    description: str,
    start: Callable[[argparse.Namespace], Awaitable[tuple[FakeServerHandle, int]]],
    argv: list[str] | None = None,
    api_key_help: str = "the credential requests must carry",
    extra_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """The command line of every fake: `--host --port --api-key` (plus its own flags); prints
    `READY <port>` once listening and serves until SIGTERM / SIGINT."""
    parser = argparse.ArgumentParser(prog=prog, description=description.strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help=api_key_help)
    if extra_arguments is not None:
        extra_arguments(parser)
    serving = _serve_until_signalled(start, parser.parse_args(argv))
    try:
        import uvloop  # the benchmarks' fake must not be the bottleneck
    except ImportError:
        asyncio.run(serving)
    else:
        uvloop.run(serving)


async def _serve_until_signalled(start, args: argparse.Namespace) -> None:
    handle, port = await start(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {port}", flush=True)
    try:
        await stop.wait()
    finally:
        await handle.stop()
