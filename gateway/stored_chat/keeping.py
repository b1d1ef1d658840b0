"""What the chat route does for a request that asked to be stored (`store: true`): the body for
the worker loses `store` (the gateway keeps the completion; the upstream is not asked to), a
stream asks the worker for usage (the usage-only chunk is dropped again when the client did not
ask for it), and the completion, whole or streamed, is stored once it is complete: before its
last bytes go out, so a client that asks for it at once finds it. A stream that did not end (the
client went away, the upstream or the worker failed) is not stored: there is no completion.

A stored completion's id is the gateway's (`chatcmpl-` and its request id, `stored_id`), in the
whole answer and in every chunk, not the upstream's: upstream ids are not all unique (some
adapters' streams carry a fixed one), and a stored id must be.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.routes import Headers, StreamEncoder
from gateway.stored_chat.assemble import ChunkAssembler
from gateway.stored_chat.store import ChatCompletionStore, new_record, string_metadata
from llmgw.contracts import Caller, Chunks

_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class Keeping:
    """One stored request, from parse (the route's `Call.state`) to its answer."""

    __slots__ = ("caller", "client_usage", "kept", "messages", "metadata", "model", "store")

    def __init__(self, store: ChatCompletionStore, model: str, messages: list[dict[str, Any]], metadata: dict[str, str]) -> None:
        self.store = store
        self.model = model
        self.messages = messages
        self.metadata = metadata
        self.caller: Caller | None = None  # set once the key is checked (the route's resolve)
        self.client_usage = False  # a stream whose client asked for usage itself
        self.kept: str | None = None  # the id of the completion being stored

    def keep(self, completion: Any) -> None:
        """Store the completion (the write starts now); once per request."""
        if not isinstance(completion, dict) or self.caller is None or self.kept is not None:
            return
        record = new_record(completion, self.caller, self.model, self.messages, self.metadata)
        self.kept = record.id
        self.store.keep(record)

    def keep_whole(self, body: bytes, completion_id: str) -> bytes:
        """The whole answer with the stored id, which is stored; an answer that is not a JSON
        object goes on as it came, not stored."""
        try:
            completion = _decoder.decode(body)
        except msgspec.DecodeError:
            return body
        if not isinstance(completion, dict):
            return body
        completion["id"] = completion_id
        self.keep(completion)
        return _encoder.encode(completion)


def stored_id(request_id: str) -> str:
    """The id of a stored completion: its request id's, so the two are found together."""
    return "chatcmpl-" + request_id.removeprefix("req-")


def keeping(store: ChatCompletionStore, model: str, body: bytes) -> tuple[Keeping, bytes]:
    """The request's `Keeping` and the body for the worker (without `store`). The body was
    checked by the chat schema: an object with a list of messages."""
    fields = _fields_decoder.decode(body)
    messages = _decoder.decode(fields["messages"])
    metadata = string_metadata(_decoder.decode(fields["metadata"])) if "metadata" in fields else {}
    del fields["store"]
    return Keeping(store, model, messages, metadata), _encoder.encode(fields)


class StoringStream:
    """The route's stream encoder, seeing each chunk on its way: the completion is put together and
    stored when the stream ends as the worker finished it (`end`)."""

    __slots__ = ("assembler", "completion_id", "inner", "state")

    def __init__(self, state: Keeping, inner: StreamEncoder, completion_id: str) -> None:
        self.state = state
        self.inner = inner
        self.completion_id = completion_id
        self.assembler = ChunkAssembler()

    def head(self, first: Chunks) -> tuple[int, Headers]:
        return self.inner.head(first)

    def data(self, chunks: list[bytes]) -> bytes:
        out = []
        for data in chunks:
            chunk = self.assembler.feed(data)
            if chunk is None:
                out.append(data)
                continue
            if not self.state.client_usage and chunk.get("usage") is not None and not chunk.get("choices"):
                continue  # the usage-only chunk asked for the record, not by the client
            chunk["id"] = self.completion_id
            out.append(_encoder.encode(chunk))
        return self.inner.data(out)

    def end(self) -> bytes:
        self.state.keep({**self.assembler.completion(), "id": self.completion_id})
        return self.inner.end()

    def error(self, status: int, message: str, type: str, code: str | None) -> bytes:
        return self.inner.error(status, message, type, code)
