"""A request's body, decoded once: the views adapters, the cost cap and the usage estimate read.

The worker builds one `RequestBody` per request and hands it to everything that reads the body.
Each view is decoded on first use and kept:
- `fields()`: the top-level fields with their values as the client's JSON text (`msgspec.Raw`),
  what the OpenAI family forwards: every field the client sent, unknown ones included, goes on
  byte for byte, and only the few fields the gateway changes are ever parsed further;
- `chat()` / `embeddings()`: the typed request translating adapters read. Asked for after
  `fields()`, it is built from those values (each decoded once, as the typed field), not by
  decoding the body again.
A cost cap makes a capped view that shares what was decoded (`with_completion_cap`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from llmgw.contracts import Operation, UpstreamRequest
from workers.providers.errors import UpstreamError, invalid_request
from workers.providers.openai_request import (
    ChatRequest,
    EmbeddingsRequest,
    chat_request_decoder,
    embeddings_request_decoder,
    text_of,
)
from workers.usage import estimate_tokens

Fields = dict[str, Any]  # top-level field -> its JSON text (msgspec.Raw), or a value the gateway set
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_LIMITS = ("max_tokens", "max_completion_tokens")
_Typed = TypeVar("_Typed", ChatRequest, EmbeddingsRequest)


def _field_decoders(struct: type[msgspec.Struct]) -> dict[str, msgspec.json.Decoder[Any]]:
    return {f.encode_name: msgspec.json.Decoder(f.type) for f in msgspec.structs.fields(struct)}


_chat_field_decoders = _field_decoders(ChatRequest)
_embeddings_field_decoders = _field_decoders(EmbeddingsRequest)


def _not_fitting(api: str, exc: msgspec.MsgspecError) -> UpstreamError:
    if isinstance(exc, msgspec.ValidationError):
        return invalid_request(f"the request does not fit the {api} API: {exc}")
    return invalid_request("the request body is not a JSON object")


def _from_fields(struct: type[_Typed], decoders: dict[str, msgspec.json.Decoder[Any]], fields: Fields) -> _Typed:
    """The typed request from a body's top-level fields (JSON text), each decoded as its field's type."""
    values = {}
    for name, value in fields.items():
        decoder = decoders.get(name)
        if decoder is not None:
            values[name] = decoder.decode(value)
    return struct(**values)


def json_value(value: Any) -> Any:
    """A field's value: its JSON text decoded (a value the gateway set is returned as it is)."""
    return msgspec.json.decode(value) if isinstance(value, msgspec.Raw) else value


def drop_metadata_tags(data: Fields) -> None:
    """Remove `metadata.tags` from a body's fields (in place; `metadata` too when nothing else is
    left in it): the tags are the gateway's (spend by tag), and an upstream takes only string
    values in `metadata`."""
    metadata = json_value(data["metadata"])
    if isinstance(metadata, dict) and "tags" in metadata:
        rest = {k: v for k, v in metadata.items() if k != "tags"}
        if rest:
            data["metadata"] = rest
        else:
            del data["metadata"]


def capped_fields(fields: Fields, allowance: int) -> Fields:
    """`fields` (not changed) with `max_tokens` (and `max_completion_tokens`) at most `allowance`."""
    out = dict(fields)
    limits = {name: json_value(out[name]) for name in _LIMITS if name in out}
    for name, value in limits.items():
        if isinstance(value, int):
            out[name] = min(value, allowance)
    if not isinstance(limits.get("max_completion_tokens"), int):
        out["max_tokens"] = min(limits.get("max_tokens") or allowance, allowance)
    return out


def capped_chat(chat: ChatRequest, allowance: int) -> ChatRequest:
    """`chat` with `max_tokens` (and `max_completion_tokens`) at most `allowance`, as `capped_fields`."""
    completion = chat.max_completion_tokens
    if completion is not None:
        completion = min(completion, allowance)
        max_tokens = min(chat.max_tokens, allowance) if chat.max_tokens is not None else None
    else:
        max_tokens = min(chat.max_tokens or allowance, allowance)
    return msgspec.structs.replace(chat, max_tokens=max_tokens, max_completion_tokens=completion)


class RequestBody(msgspec.Struct, gc=False):
    """One request's JSON body and the views of it decoded so far (see the module docstring).
    A Struct for its cheap construction (one per request); it is never encoded."""

    raw: bytes  # the client's bytes as they came (a capped view keeps its source's)
    _fields: Fields | None = None
    _chat: ChatRequest | None = None
    _embeddings: EmbeddingsRequest | None = None
    _source: RequestBody | None = None  # a capped view: the body it caps
    _cap: int = 0

    @classmethod
    def of(cls, request: UpstreamRequest, body: RequestBody | None = None) -> RequestBody:
        """`body`, or (an adapter called without one) a new view of `request.body`."""
        return body if body is not None else cls(request.body)

    def with_completion_cap(self, allowance: int) -> RequestBody:
        """A view of this body whose completion limit is at most `allowance` tokens."""
        return RequestBody(self.raw, _source=self, _cap=allowance)

    def fields(self) -> Fields:
        """The top-level fields, values as JSON text. Shared: copy the dict before changing it."""
        fields = self._fields
        if fields is None:
            if self._source is not None:
                fields = capped_fields(self._source.fields(), self._cap)
            else:
                try:
                    fields = _fields_decoder.decode(self.raw)
                except msgspec.MsgspecError:
                    raise invalid_request("the request body is not a JSON object") from None
            self._fields = fields
        return fields

    def chat(self) -> ChatRequest:
        """The body as a chat completions request."""
        if self._chat is None:
            if self._source is not None:
                self._chat = capped_chat(self._source.chat(), self._cap)
            else:
                try:
                    if self._fields is not None:
                        self._chat = _from_fields(ChatRequest, _chat_field_decoders, self._fields)
                    else:
                        self._chat = chat_request_decoder.decode(self.raw)
                except msgspec.MsgspecError as exc:
                    raise _not_fitting("chat completions", exc) from None
        return self._chat

    def embeddings(self) -> EmbeddingsRequest:
        """The body as an embeddings request (a cap does not apply: embeddings have no completion)."""
        if self._embeddings is None:
            if self._source is not None:
                self._embeddings = self._source.embeddings()
            else:
                try:
                    if self._fields is not None:
                        self._embeddings = _from_fields(EmbeddingsRequest, _embeddings_field_decoders, self._fields)
                    else:
                        self._embeddings = embeddings_request_decoder.decode(self.raw)
                except msgspec.MsgspecError as exc:
                    raise _not_fitting("embeddings", exc) from None
        return self._embeddings


def estimate_prompt_tokens(body: RequestBody, operation: str = Operation.CHAT) -> int:
    """Estimate a request's prompt tokens from its text (chat messages, or embeddings input), for
    when the provider did not count them; a body that fits neither is counted by its size."""
    try:
        if operation == Operation.EMBEDDINGS:
            value = body.embeddings().input
            items = [value] if isinstance(value, str) else value
            chars = sum(len(x) for x in items if isinstance(x, str))
        else:
            chars = sum(len(text_of(m.content)) for m in body.chat().messages)
    except UpstreamError:
        return estimate_tokens(len(body.raw))
    return estimate_tokens(chars)
