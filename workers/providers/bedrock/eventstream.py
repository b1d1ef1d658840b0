"""The AWS event-stream binary framing (`application/vnd.amazon.eventstream`) of ConverseStream.

Reference: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
and the framing AWS documents for event streams (the same as Transcribe's and S3 Select's):

    total length (u32 BE) | headers length (u32 BE) | prelude CRC32 (u32 BE)
    headers: name length (u8), name, value type (u8), value   (repeated)
    payload
    message CRC32 (u32 BE, over everything before it)

A message is only trusted once both CRCs match: a frame cut or damaged on the way must end the
stream with an error, never reach the client as half an event.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import msgspec

PRELUDE_LEN = 12
MIN_MESSAGE_LEN = PRELUDE_LEN + 4
MAX_HEADERS_LEN = 128 * 1024
MAX_PAYLOAD_LEN = 24 * 1024 * 1024

HeaderValue = bool | int | bytes | str

_BOOL_TRUE, _BOOL_FALSE, _BYTE, _SHORT, _INT, _LONG, _BYTES, _STRING, _TIMESTAMP, _UUID = range(10)
_FIXED = {_BYTE: (1, ">b"), _SHORT: (2, ">h"), _INT: (4, ">i"), _LONG: (8, ">q"), _TIMESTAMP: (8, ">q")}
_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")


class EventStreamError(Exception):
    """The bytes are not a valid event stream (bad length, CRC mismatch, unknown header type)."""


class Message(msgspec.Struct, frozen=True):
    headers: dict[str, HeaderValue]
    payload: bytes


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode()
    head = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return head + bytes([_BOOL_TRUE if value else _BOOL_FALSE])
    if isinstance(value, int):
        return head + bytes([_LONG]) + struct.pack(">q", value)
    if isinstance(value, str):
        raw = value.encode()
        return head + bytes([_STRING]) + struct.pack(">H", len(raw)) + raw
    return head + bytes([_BYTES]) + struct.pack(">H", len(value)) + value


def encode_message(headers: dict[str, HeaderValue], payload: bytes) -> bytes:
    """One framed message (strings as type 7, ints as type 5, bytes as type 6, bools 0/1)."""
    block = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = PRELUDE_LEN + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    prelude += _U32.pack(zlib.crc32(prelude))
    body = prelude + block + payload
    return body + _U32.pack(zlib.crc32(body))


def decode_headers(block: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos, end = 0, len(block)
    try:
        while pos < end:
            name_len = block[pos]
            name = block[pos + 1 : pos + 1 + name_len].decode()
            pos += 1 + name_len
            kind = block[pos]
            pos += 1
            value: HeaderValue
            if kind in (_BOOL_TRUE, _BOOL_FALSE):
                value = kind == _BOOL_TRUE
            elif kind in _FIXED:
                size, fmt = _FIXED[kind]
                (value,) = struct.unpack_from(fmt, block, pos)
                pos += size
            elif kind in (_BYTES, _STRING):
                (size,) = struct.unpack_from(">H", block, pos)
                raw = block[pos + 2 : pos + 2 + size]
                if len(raw) != size:
                    raise EventStreamError("a header value runs past the header block")
                value = raw.decode() if kind == _STRING else raw
                pos += 2 + size
            elif kind == _UUID:
                value = block[pos : pos + 16]
                pos += 16
            else:
                raise EventStreamError(f"unknown header value type {kind}")
            if pos > end:
                raise EventStreamError("a header value runs past the header block")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError):
        raise EventStreamError("malformed header block") from None
    return headers


class EventStreamDecoder:
    """Splits bytes, arriving in chunks of any size, into whole verified messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message held back (non-zero at the end: the stream was cut)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[Message]:
        """The messages `data` completes, each as soon as it is verified (a damaged one raises
        EventStreamError after the good ones before it have been taken)."""
        self._buffer += data
        return self._messages()

    def _messages(self) -> Iterator[Message]:
        while len(self._buffer) >= PRELUDE_LEN:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(self._buffer)
            if zlib.crc32(memoryview(self._buffer)[:8]) != prelude_crc:
                raise EventStreamError("prelude CRC mismatch")
            if total < MIN_MESSAGE_LEN or headers_len > MAX_HEADERS_LEN or headers_len > total - MIN_MESSAGE_LEN:
                raise EventStreamError(f"invalid lengths (total {total}, headers {headers_len})")
            if total - MIN_MESSAGE_LEN - headers_len > MAX_PAYLOAD_LEN:
                raise EventStreamError("payload too large")
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = _U32.unpack_from(frame, total - 4)
            if zlib.crc32(frame[: total - 4]) != message_crc:
                raise EventStreamError("message CRC mismatch")
            headers = decode_headers(frame[PRELUDE_LEN : PRELUDE_LEN + headers_len])
            yield Message(headers, frame[PRELUDE_LEN + headers_len : total - 4])
