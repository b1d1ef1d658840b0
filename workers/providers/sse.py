"""Server-sent events: the `data:` payloads of a stream, read as bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The `data:` field of each server-sent event line, as bytes, the moment its line is complete.

    Blank separators, comments and other fields are skipped. (httpx's `aiter_lines()` would decode
    every chunk to text, split it in three generator layers, and the data would be encoded back.)
    """
    pending = b""
    async for chunk in chunks:
        lines = (pending + chunk).splitlines(keepends=True)  # at \n, \r\n or \r
        pending = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
    if pending.startswith(b"data:"):
        yield pending[5:].strip()


class SseData:
    """The `data:` payloads of a server-sent event stream, fed in arbitrary byte chunks (for a
    stream that is relayed as it is and only read on the way through)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._pending + chunk).splitlines(keepends=True)
        self._pending = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        return [line[5:].strip() for line in lines if line.startswith(b"data:")]
