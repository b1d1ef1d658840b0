"""The event-stream framing of the fake Bedrock runtime's ConverseStream (see fake_bedrock.py):
binary `application/vnd.amazon.eventstream` messages with prelude and message CRC32s:
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
"""

from __future__ import annotations

import struct
import zlib

import msgspec

_encode = msgspec.json.Encoder().encode


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message, string headers only (value type 7)."""
    block = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode() for k, v in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(block) + len(payload), len(block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + block + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, body: dict) -> bytes:
    """One `event` message of the stream, its JSON body padded as Bedrock pads it."""
    # Real events carry a `p` field of padding letters (it hides the payload's length).
    payload = _encode({**body, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"[: 1 + len(event_type)]})
    return frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, payload)


def exception_frame(exception_type: str, message: str) -> bytes:
    """An `exception` message: an error in mid-stream."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, _encode({"message": message}))
