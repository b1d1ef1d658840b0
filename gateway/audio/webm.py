"""The duration of a WebM (Matroska) file, read from its EBML structure.

Reference: the Matroska specification (RFC 9559) and its EBML encoding (RFC 8794): elements are
an ID and a size, both variable-length integers; a size of all ones is "unknown" (the element
runs until an element that cannot be its child). A file states its duration in `Segment/Info/
Duration`, in units of `Info/TimestampScale` nanoseconds; recordings made by browsers
(MediaRecorder) often leave it out and write clusters of unknown size, so then the duration is
the timestamp of the last block: its cluster's `Timestamp` plus the block's own offset. The last
cluster is looked for from the end of the file, so an hour-long recording is not walked block by
block.
"""

from __future__ import annotations

import struct

EBML_HEADER = 0x1A45DFA3
DOC_TYPE = 0x4282
SEGMENT = 0x18538067
INFO = 0x1549A966
TIMESTAMP_SCALE = 0x2AD7B1
DURATION = 0x4489
CLUSTER = 0x1F43B675
CLUSTER_TIMESTAMP = 0xE7
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
BLOCK_DURATION = 0x9B
# The children of a Segment: an unknown-size cluster ends where one of them starts.
SEGMENT_CHILDREN = frozenset({0x114D9B74, INFO, 0x1654AE6B, CLUSTER, 0x1C53BB6B, 0x1941A469, 0x1043A770, 0x1254C367})
# What a cluster may hold (RFC 9559, and EBML's Void and CRC-32 anywhere).
CLUSTER_CHILDREN = frozenset({CLUSTER_TIMESTAMP, SIMPLE_BLOCK, BLOCK_GROUP, 0xA7, 0xAB, 0x5854, 0xAF, 0xEC, 0xBF})
DEFAULT_TIMESTAMP_SCALE = 1_000_000  # nanoseconds per tick: milliseconds
UNKNOWN = -1
CLUSTER_ID = CLUSTER.to_bytes(4, "big")
TAIL_TRIES = 8  # cluster IDs tried from the end of the file before walking it from the start


class NotWebm(ValueError):
    """The bytes are not a WebM / Matroska file whose duration can be read."""


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    """(value, position after it) of the variable-length integer at `pos`; a size whose bits
    are all ones is UNKNOWN."""
    if pos >= len(data):
        raise NotWebm("the file ends inside an element header")
    first = data[pos]
    if first == 0:
        raise NotWebm("an invalid element header")
    length = 9 - first.bit_length()  # the position of the first set bit says how many bytes
    if pos + length > len(data):
        raise NotWebm("the file ends inside an element header")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return UNKNOWN, pos + length
    return value, pos + length


def _element(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(id, payload start, payload end) of the element at `pos` (an unknown size runs to `end`,
    a size past `end` is cut there: a truncated file)."""
    ident, pos = _vint(data, pos, keep_marker=True)
    size, pos = _vint(data, pos, keep_marker=False)
    return ident, pos, end if size == UNKNOWN else min(pos + size, end)


def _uint(payload: bytes) -> int:
    return int.from_bytes(payload, "big") if payload else 0


def _float(payload: bytes) -> float:
    if len(payload) == 4:
        return float(struct.unpack(">f", payload)[0])
    if len(payload) == 8:
        return float(struct.unpack(">d", payload)[0])
    raise NotWebm("a Duration that is not a 4- or 8-byte float")


def _block_offset(data: bytes, start: int) -> int:
    """A (Simple)Block's timestamp relative to its cluster: after the track number, int16."""
    _, pos = _vint(data, start, keep_marker=False)
    if pos + 2 > len(data):
        raise NotWebm("the file ends inside a block")
    return int(struct.unpack(">h", data[pos : pos + 2])[0])


class _Timeline:
    """The latest moment a block reaches, in ticks, while the clusters are walked."""

    __slots__ = ("cluster", "last")

    def __init__(self) -> None:
        self.cluster = 0
        self.last: int | None = None

    def block(self, offset: int, duration: int = 0) -> None:
        reached = self.cluster + offset + duration
        self.last = reached if self.last is None else max(self.last, reached)


def _walk_cluster(data: bytes, pos: int, end: int, timeline: _Timeline, strict: bool = False) -> int:
    """Read one cluster's timestamp and blocks; returns where the cluster ends. `strict`: an
    element a cluster cannot hold means these bytes are no cluster (NotWebm)."""
    while pos < end:
        ident, start, stop = _element(data, pos, end)
        if ident in SEGMENT_CHILDREN:
            return pos  # an unknown-size cluster ends at the next element of the segment
        if strict and ident not in CLUSTER_CHILDREN:
            raise NotWebm("not a cluster")
        if ident == CLUSTER_TIMESTAMP:
            timeline.cluster = _uint(data[start:stop])
        elif ident == SIMPLE_BLOCK:
            timeline.block(_block_offset(data, start))
        elif ident == BLOCK_GROUP:
            offset, duration, inner = None, 0, start
            while inner < stop:
                child, child_start, child_stop = _element(data, inner, stop)
                if child == BLOCK:
                    offset = _block_offset(data, child_start)
                elif child == BLOCK_DURATION:
                    duration = _uint(data[child_start:child_stop])
                inner = child_stop
            if offset is not None:
                timeline.block(offset, duration)
        pos = stop
    return end


def webm_seconds(data: bytes) -> float:
    """Seconds of media in a WebM / Matroska file; NotWebm when they cannot be read."""
    ident, start, stop = _element(data, 0, len(data))
    if ident != EBML_HEADER:
        raise NotWebm("no EBML header")
    pos = start
    while pos < stop:
        child, child_start, child_stop = _element(data, pos, stop)
        if child == DOC_TYPE and data[child_start:child_stop].rstrip(b"\0") not in (b"webm", b"matroska"):
            raise NotWebm("an EBML document that is not WebM or Matroska")
        pos = child_stop
    pos = stop
    while pos < len(data):  # the Segment (after any Void elements)
        ident, start, stop = _element(data, pos, len(data))
        if ident == SEGMENT:
            return _segment_seconds(data, start, stop)
        pos = stop
    raise NotWebm("no Segment")


def _segment_seconds(data: bytes, pos: int, end: int) -> float:
    scale, duration = DEFAULT_TIMESTAMP_SCALE, None
    while pos < end:
        ident, start, stop = _element(data, pos, end)
        if ident == INFO:
            inner = start
            while inner < stop:
                child, child_start, child_stop = _element(data, inner, stop)
                if child == TIMESTAMP_SCALE:
                    scale = _uint(data[child_start:child_stop]) or DEFAULT_TIMESTAMP_SCALE
                elif child == DURATION:
                    duration = _float(data[child_start:child_stop])
                inner = child_stop
            if duration is not None and duration > 0:
                return duration * scale / 1e9
        elif ident == CLUSTER:
            last = _last_block(data, pos, end)
            if last is None:
                break
            return last * scale / 1e9
        pos = stop
    raise NotWebm("neither a Duration nor any block")


def _walk_clusters(data: bytes, pos: int, end: int, timeline: _Timeline, strict: bool = False) -> None:
    """Walk the segment's elements from `pos` to `end`: clusters read, the others skipped."""
    while pos < end:
        ident, start, stop = _element(data, pos, end)
        if ident == CLUSTER:
            stop = _walk_cluster(data, start, stop, timeline, strict)
        elif strict and ident not in SEGMENT_CHILDREN and ident not in (0xEC, 0xBF):
            raise NotWebm("not an element of a segment")
        pos = stop


def _last_block(data: bytes, first: int, end: int) -> int | None:
    """The time the last block reaches, in ticks. Read from the last cluster, found from the end
    of the file (a cluster ID whose bytes read as clusters to the end), so a long recording is not
    walked block by block; walked from the first cluster when no such ID is found."""
    candidate = data.rfind(CLUSTER_ID, first + 1, end)
    for _ in range(TAIL_TRIES):
        if candidate <= first:
            break
        timeline = _Timeline()
        try:
            _, start, _ = _element(data, candidate, end)
            if start < end and data[start] == CLUSTER_TIMESTAMP:
                _walk_clusters(data, candidate, end, timeline, strict=True)
                if timeline.last is not None:
                    return timeline.last
        except NotWebm:
            pass  # (the bytes of a block that happen to spell a cluster's ID)
        candidate = data.rfind(CLUSTER_ID, first + 1, candidate)
    timeline = _Timeline()
    _walk_clusters(data, first, end, timeline)
    return timeline.last
