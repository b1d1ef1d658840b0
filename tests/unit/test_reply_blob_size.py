"""When a reply travels by the blobs store: a body (or a stream message's chunks) above the
connection's max_payload less the margin for the message's other fields, and only then."""

from __future__ import annotations

from typing import Any

import msgspec

from llmgw.blobs import MESSAGE_MARGIN, Blobs, reply_blob
from llmgw.contracts import (
    Chunks,
    Completed,
    Failed,
    decode_chunk_data,
    decode_reply,
    encode_internal,
    reply_blob_name,
)

MB = 1024 * 1024


class RecordingStore:
    """Stands in for the object store: what was put, under which name (the real one is exercised
    by tests/integration/test_reply_blobs.py)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, name: str, data: bytes) -> None:
        self.objects[name] = data


def blobs(max_payload: int = MB) -> tuple[Blobs, RecordingStore]:
    store = RecordingStore()
    return Blobs(store, max_payload), store  # type: ignore[arg-type]


def test_the_threshold_is_the_connections_max_payload_less_the_margin() -> None:
    b, _ = blobs(MB)
    assert b.threshold == MB - MESSAGE_MARGIN
    assert b.fits(b.threshold) and not b.fits(b.threshold + 1)
    assert Blobs(RecordingStore(), 8 * MB).threshold == 8 * MB - MESSAGE_MARGIN  # type: ignore[arg-type]  # a raised limit
    assert Blobs(RecordingStore(), 2000).threshold == 1024  # type: ignore[arg-type]  # (never below 1 KiB)


async def test_a_whole_answer_that_fits_is_sent_as_it_is() -> None:
    b, store = blobs()
    reply = Completed(request_id="r1", body=b"x" * b.threshold, cost=0.1)
    assert await b.pack_completed(reply) is reply
    assert store.objects == {}
    assert len(encode_internal(reply)) < MB  # what fits the threshold fits a message


async def test_a_whole_answer_one_byte_over_goes_by_the_store() -> None:
    b, store = blobs()
    body = b"x" * (b.threshold + 1)
    packed = await b.pack_completed(Completed(request_id="r1", attempt=3, body=body, cost=0.1, tokens=5))
    name = reply_blob_name("r1", 3)
    assert store.objects == {name: body}
    assert (packed.body, packed.body_blob, packed.cost, packed.tokens) == (b"", name, 0.1, 5)
    assert reply_blob(packed) == name and len(encode_internal(packed)) < 1024


async def test_stream_chunks_are_measured_together_with_their_framing() -> None:
    b, store = blobs()
    # Sixteen coalesced chunks (LLMGW_COALESCE_MAX) of 64 KB each, as a raw stream reads them: 1 MB.
    many = Chunks(request_id="r2", seq=4, data=[b"y" * (64 * 1024)] * 16)
    packed = await b.pack_chunks(many)
    name = reply_blob_name("r2", 1, 4)
    assert (packed.data, packed.data_blob, reply_blob(packed)) == ([], name, name)
    assert decode_chunk_data(store.objects[name]) == many.data
    # Exactly at the threshold, framing counted (5 bytes a chunk): sent as it is, and it fits.
    edge = Chunks(request_id="r3", seq=0, data=[b"z" * (b.threshold - 10 - 5), b"z" * 5])
    assert await b.pack_chunks(edge) is edge
    assert len(encode_internal(edge)) < MB
    over = msgspec.structs.replace(edge, data=[b"z" * (b.threshold - 10 - 4), b"z" * 5])
    assert (await b.pack_chunks(over)).data_blob == reply_blob_name("r3", 1, 0)


async def test_replies_without_a_blob_pass_through_the_edge_untouched() -> None:
    b, _ = blobs()
    replies: list[Any] = [
        Completed(request_id="r", body=b"{}"),
        Chunks(request_id="r", seq=0, data=[b"{}"]),
        Failed(request_id="r", status=500, message="m", type="api_error"),
    ]
    for reply in replies:
        assert reply_blob(reply) is None
        assert await b.unpack(reply) is reply


def test_blob_names_differ_by_delivery_and_message_and_from_the_request_body() -> None:
    names = {reply_blob_name("req", 1), reply_blob_name("req", 2), reply_blob_name("req", 1, 0), reply_blob_name("req", 1, 1)}
    assert len(names) == 4 and "req" not in names


def test_the_blob_fields_travel_on_the_wire() -> None:
    whole = Completed(request_id="r", body=b"", body_blob="r.reply.1")
    chunks = Chunks(request_id="r", seq=2, data=[], data_blob="r.reply.1.2")
    assert decode_reply(encode_internal(whole)) == whole
    assert decode_reply(encode_internal(chunks)) == chunks
    assert b"body_blob" not in encode_internal(Completed(request_id="r", body=b"{}"))  # (omitted when unset)
