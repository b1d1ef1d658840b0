"""Finished spans as an OTLP `ExportTraceServiceRequest`, in protobuf's wire format.

Written by hand for the few message types a span needs (opentelemetry-proto's
`opentelemetry/proto/trace/v1/trace.proto` and `common/v1/common.proto`: ResourceSpans, Resource,
ScopeSpans, InstrumentationScope, Span, Status, KeyValue, AnyValue): building the generated
classes costs more than the request the span describes. Field numbers below are the .proto's."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmgw.tracing import Span

AttributeValue = str | bool | int | float

_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack
_U64 = (1 << 64) - 1
_FLAG_SAMPLED = 0x01
_FLAG_HAS_IS_REMOTE = 0x100
_FLAG_IS_REMOTE = 0x200
_keys: dict[str, bytes] = {}
_BYTE = [bytes((i,)) for i in range(0x80)]  # a varint below 128: its one byte


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _BYTE[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _key(key: str) -> bytes:
    """KeyValue.key (1), encoded once per key."""
    encoded = _keys.get(key)
    if encoded is None:
        encoded = _keys[key] = _length_delimited(b"\x0a", key.encode())
    return encoded


def _any_value(value: AttributeValue) -> bytes:
    """AnyValue: string_value (1), bool_value (2), int_value (3), double_value (4)."""
    if isinstance(value, str):
        return _length_delimited(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & _U64)
    return b"\x21" + _DOUBLE(float(value))


def key_value(key: str, value: AttributeValue) -> bytes:
    """One KeyValue: key (1), value (2)."""
    return _key(key) + _length_delimited(b"\x12", _any_value(value))


def _key_value(tag: bytes, key: str, value: AttributeValue) -> bytes:
    """One KeyValue field under `tag`: its tag, length, key (1) and value (2)."""
    kind = type(value)
    if kind is str:
        encoded = value.encode()  # type: ignore[union-attr]  # (a str)
        size = len(encoded)
        any_value = b"\x0a" + (_BYTE[size] if size < 0x80 else _varint(size)) + encoded
    elif kind is int and 0 <= value < 0x80:  # type: ignore[operator]  # (an int)
        any_value = b"\x18" + _BYTE[value]  # type: ignore[index]
    else:
        any_value = _any_value(value)
    key_bytes = _keys.get(key) or _key(key)
    size = len(key_bytes) + len(any_value) + 2
    if size < 0x80 and len(any_value) < 0x80:
        return tag + _BYTE[size] + key_bytes + b"\x12" + _BYTE[len(any_value)] + any_value
    return _length_delimited(tag, key_bytes + _length_delimited(b"\x12", any_value))


# Most attributes repeat from request to request (method, path, model, deployment, status, small
# counts): their encoded KeyValue is kept, by tag, for a dict lookup instead of an encoding. The
# values that do not repeat (request ids) fill it up; it starts again empty past this size.
_KEPT_MAX = 8192
_kept: dict[bytes, dict[tuple[str, str | int], bytes]] = {}


def _attributes(tag: bytes, attributes: Mapping[str, AttributeValue]) -> bytes:
    kept = _kept.get(tag)
    if kept is None:
        kept = _kept[tag] = {}
    parts = []
    for key, value in attributes.items():
        kind = type(value)
        if kind is str or kind is int:  # (never bool: True == 1 would find 1's bytes)
            pair = (key, value)
            encoded = kept.get(pair)  # type: ignore[arg-type]
            if encoded is None:
                if len(kept) >= _KEPT_MAX:
                    kept.clear()
                encoded = kept[pair] = _key_value(tag, key, value)  # type: ignore[index]
            parts.append(encoded)
        else:
            parts.append(_key_value(tag, key, value))
    return b"".join(parts)


_names: dict[str, bytes] = {}


def _name(name: str) -> bytes:
    """Span.name (5), encoded once per name (names are a route's or a model's: bounded)."""
    if len(_names) >= _KEPT_MAX:
        _names.clear()
    encoded = _names[name] = _length_delimited(b"\x2a", name.encode())
    return encoded


def encode_span(span: Span) -> bytes:
    """Span: trace_id (1), span_id (2), parent_span_id (4), name (5), kind (6), start (7) and end
    (8) in ns since the epoch, attributes (9), status (15: message 2, code 3), flags (16)."""
    parts = [b"\x0a\x10", span.trace_id.to_bytes(16, "big"), b"\x12\x08", span.span_id.to_bytes(8, "big")]
    if span.parent_id:
        parts += (b"\x22\x08", span.parent_id.to_bytes(8, "big"))
    parts += (
        _names.get(span.name) or _name(span.name),
        b"\x30",
        bytes((span.kind,)),
        b"\x39",
        _FIXED64(span.start_ns),
        b"\x41",
        _FIXED64(span.end_ns),
        _attributes(b"\x4a", span.attributes),
    )
    if span.error is not None:
        parts.append(_length_delimited(b"\x7a", _length_delimited(b"\x12", span.error.encode()) + b"\x18\x02"))
    flags = _FLAG_SAMPLED | _FLAG_HAS_IS_REMOTE | (_FLAG_IS_REMOTE if span.remote_parent else 0)
    parts += (b"\x85\x01", _FIXED32(flags))
    return b"".join(parts)


def encode_resource(attributes: Mapping[str, AttributeValue]) -> bytes:
    """ResourceSpans.resource (1): Resource with its attributes (1)."""
    return _length_delimited(b"\x0a", _attributes(b"\x0a", attributes))


def encode_scope(name: str, version: str) -> bytes:
    """ScopeSpans.scope (1): InstrumentationScope name (1), version (2)."""
    return _length_delimited(b"\x0a", _length_delimited(b"\x0a", name.encode()) + _length_delimited(b"\x12", version.encode()))


def encode_request(resource: bytes, scope: bytes, spans: Iterable[Span]) -> bytes:
    """ExportTraceServiceRequest: one ResourceSpans (1) holding one ScopeSpans (2) of `spans`."""
    scope_spans = scope + b"".join(_length_delimited(b"\x12", encode_span(span)) for span in spans)
    return _length_delimited(b"\x0a", resource + _length_delimited(b"\x12", scope_spans))
