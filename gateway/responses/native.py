"""Answers of deployments that speak the Responses API, relayed as they came: a whole `response`
JSON, or its stream of typed events, with one change: the upstream was told not to store the
response and knows nothing of the conversation before it (the gateway does both), so `store` and
`previous_response_id` of the response object (in a stream, of its lifecycle events) are set to
what the client asked. On the way through, the edge reads the final `response` object (a whole
answer, or the `response.completed` / `response.incomplete` event) to store it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.responses.wire import sse_event
from gateway.routes import Headers
from llmgw.contracts import Chunks, Completed

_LIFECYCLE = (
    b"response.created",
    b"response.in_progress",
    b"response.queued",
    b"response.completed",
    b"response.incomplete",
    b"response.failed",
)
_FINAL = ("response.completed", "response.incomplete")


class _Event(msgspec.Struct):
    sequence_number: int | None = None


_sequence_decoder = msgspec.json.Decoder(_Event)
_object_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


class Echo(msgspec.Struct, frozen=True):
    """What the response object says of the request, as the client made it."""

    store: bool
    previous_response_id: str | None
    response_id: str | None = None  # a background response's: the gateway's, known before the upstream's
    background: bool = False

    def apply(self, response: dict[str, Any]) -> None:
        response["store"] = self.store
        response["previous_response_id"] = self.previous_response_id
        if self.response_id is not None:
            response["id"] = self.response_id
        if self.background:
            response["background"] = True


def latin1_headers(pairs: list[tuple[str, str]]) -> Headers:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


def whole_native_answer(reply: Completed, echo: Echo) -> tuple[int, Headers, bytes, dict[str, Any] | None]:
    """(status, headers, body, the response object) of a native whole answer: the upstream's, the
    echo set in a response object (None when the body is not one: an error, ...)."""
    headers = latin1_headers([(k, v) for k, v in reply.headers if k != "content-type"])
    content_type = next((v for k, v in reply.headers if k == "content-type"), "application/json")
    headers.append((b"content-type", content_type.encode("latin-1")))
    response = response_in_body(reply.body) if reply.status < 400 else None
    if response is None:
        return reply.status, headers, reply.body, None
    echo.apply(response)
    return reply.status, headers, _encoder.encode(response), response


def response_in_body(body: bytes) -> dict[str, Any] | None:
    """The `response` object of a whole answer, or None when the body is not one."""
    try:
        value = _object_decoder.decode(body)
    except msgspec.MsgspecError:
        return None
    return value if value.get("object") == "response" and isinstance(value.get("id"), str) else None


class NativeEventStream:
    """The data lines of a relayed stream's events, fed in arbitrary chunks and given back whole
    lines at a time: lifecycle events get the echo, the final `response` object and the last
    sequence number are kept."""

    __slots__ = ("_pending", "echo", "final", "last_sequence")

    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self._pending = b""
        self.final: dict[str, Any] | None = None
        self.last_sequence = -1

    def feed(self, chunk: bytes) -> bytes:
        """The complete lines so far (a partial last line waits for the rest)."""
        lines = (self._pending + chunk).splitlines(keepends=True)
        self._pending = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        return b"".join([self._line(line) if line.startswith(b"data:") else line for line in lines])

    def rest(self) -> bytes:
        rest, self._pending = self._pending, b""
        return self._line(rest) if rest.startswith(b"data:") else rest

    def _line(self, line: bytes) -> bytes:
        data = line[5:].strip()
        if b'"sequence_number"' in data:
            try:
                number = _sequence_decoder.decode(data).sequence_number
            except msgspec.MsgspecError:
                number = None
            if number is not None:
                self.last_sequence = max(self.last_sequence, number)
        if not any(kind in data for kind in _LIFECYCLE):
            return line
        try:
            event = _object_decoder.decode(data)
        except msgspec.MsgspecError:
            return line
        response = event.get("response")
        if not isinstance(response, dict):
            return line
        self.echo.apply(response)
        if event.get("type") in _FINAL:
            self.final = response
        ending = line[len(line.rstrip(b"\r\n")) :]
        return b"data: " + _encoder.encode(event) + ending


class NativeResponsesStream:
    """A relayed Responses stream: the upstream's status, headers and events (see
    `NativeEventStream`); an error after the start ends it with an `error` event numbered after
    the last one relayed."""

    __slots__ = ("events",)

    def __init__(self, echo: Echo) -> None:
        self.events = NativeEventStream(echo)

    def head(self, first: Chunks) -> tuple[int, Headers]:
        return first.status or 200, latin1_headers(first.headers)

    def data(self, chunks: list[bytes]) -> bytes:
        return self.events.feed(b"".join(chunks))

    def end(self) -> bytes:
        return self.events.rest()

    def error(self, status: int, message: str, type: str, code: str | None) -> bytes:
        event = {"type": "error", "code": code, "message": message, "param": None}
        rest = self.events.rest()
        return rest + (b"\n\n" if rest else b"") + sse_event({**event, "sequence_number": self.events.last_sequence + 1})
