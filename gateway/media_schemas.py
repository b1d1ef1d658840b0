"""Validation of the image generation, moderation and rerank request bodies, and what each may
cost at worst.

References: https://platform.openai.com/docs/api-reference/images/create,
https://platform.openai.com/docs/api-reference/moderations/create and Cohere's
https://docs.cohere.com/reference/rerank (v2; v1's document objects and `rank_fields` too).
Unknown fields are forwarded; rerank documents given as objects are turned into the text the
model ranks (Cohere's advice: one `key: value` line per field) at the edge, so every worker
receives strings.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec

from gateway.errors import GatewayError
from gateway.schemas import decoded
from llmgw.contracts import ErrorCode, ErrorType

PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Timeout = Annotated[float, msgspec.Meta(gt=0)]  # seconds (the gateway's; not sent upstream)

# ---- images -------------------------------------------------------------------------------------

ImageSize = Literal["auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792"]
ImageQuality = Literal["auto", "standard", "hd", "low", "medium", "high"]


class ImageGenerationRequest(msgspec.Struct):
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=32000)]
    model: Annotated[str, msgspec.Meta(min_length=1)] = "dall-e-2"  # (the API's default)
    n: Annotated[int, msgspec.Meta(ge=1, le=10)] | None = None
    size: ImageSize | None = None
    quality: ImageQuality | None = None
    response_format: Literal["url", "b64_json"] | None = None
    style: Literal["vivid", "natural"] | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    stream: bool | None = None  # (streamed partial images are not offered: refused)
    user: str | None = None
    timeout: Timeout | None = None


# ---- moderations --------------------------------------------------------------------------------


class ImageURL(msgspec.Struct):
    url: Annotated[str, msgspec.Meta(min_length=1)]


class ModerationPart(msgspec.Struct):
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageURL | None = None


class ModerationRequest(msgspec.Struct):
    input: str | Annotated[list[str | ModerationPart], msgspec.Meta(min_length=1)]
    model: Annotated[str, msgspec.Meta(min_length=1)] = "omni-moderation-latest"  # (the API's default)
    timeout: Timeout | None = None


# ---- rerank -------------------------------------------------------------------------------------

MAX_DOCUMENTS = 10_000
DOCUMENTS_PER_SEARCH_UNIT = 100  # Cohere bills one search unit per query of up to 100 documents
TOKENS_PER_CHUNK = 500  # ... a longer document (query included) counting once per 500-token chunk
DEFAULT_MAX_TOKENS_PER_DOC = 4096  # ... after it is cut to max_tokens_per_doc


class RerankRequest(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    query: Annotated[str, msgspec.Meta(min_length=1)]
    documents: Annotated[list[str | dict[str, Any]], msgspec.Meta(min_length=1, max_length=MAX_DOCUMENTS)]
    top_n: PositiveInt | None = None
    return_documents: bool | None = None
    max_tokens_per_doc: PositiveInt | None = None
    rank_fields: list[str] | None = None  # (v1: which fields of document objects are ranked)
    max_chunks_per_doc: PositiveInt | None = None  # (v1)
    timeout: Timeout | None = None


_images_decoder = msgspec.json.Decoder(ImageGenerationRequest)
_moderation_decoder = msgspec.json.Decoder(ModerationRequest)
_rerank_decoder = msgspec.json.Decoder(RerankRequest)
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError(400, f"Invalid request: {message}", ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def parse_images(body: bytes) -> ImageGenerationRequest:
    request = decoded(_images_decoder, body)
    if request.stream:
        raise _bad("streamed image generation is not offered; leave `stream` out", "stream")
    return request


def parse_moderation(body: bytes) -> ModerationRequest:
    request = decoded(_moderation_decoder, body)
    parts = [request.input] if isinstance(request.input, str) else request.input
    for i, part in enumerate(parts):
        if isinstance(part, ModerationPart):
            if part.type == "text" and part.text is None:
                raise _bad("a `text` part needs `text`", f"input[{i}].text")
            if part.type == "image_url" and part.image_url is None:
                raise _bad("an `image_url` part needs `image_url`", f"input[{i}].image_url")
    return request


def moderation_text_bytes(request: ModerationRequest) -> int:
    parts = [request.input] if isinstance(request.input, str) else request.input
    return sum(len((p if isinstance(p, str) else p.text or "").encode()) for p in parts)


def document_text(document: str | dict[str, Any], rank_fields: list[str] | None, index: int) -> str:
    """The text the model ranks: a string as it is; an object's `text` (v1's default), or with
    `rank_fields` those fields, one `key: value` line each."""
    if isinstance(document, str):
        return document
    if not rank_fields or rank_fields == ["text"]:
        text = document.get("text")
        if not isinstance(text, str):
            raise _bad("a document object needs a string `text` (or name its fields in `rank_fields`)", f"documents[{index}]")
        return text
    lines = [f"{name}: {document[name]}" for name in rank_fields if name in document]
    if not lines:
        raise _bad("the document has none of the fields in `rank_fields`", f"documents[{index}]")
    return "\n".join(lines)


def parse_rerank(body: bytes) -> tuple[RerankRequest, list[str], bytes]:
    """(the request, its documents as text, the body for the worker: documents as strings and
    v1's object fields dropped; any other field kept)."""
    request = decoded(_rerank_decoder, body)
    texts = [document_text(d, request.rank_fields, i) for i, d in enumerate(request.documents)]
    fields: dict[str, Any] = dict(_fields_decoder.decode(body))
    fields["documents"] = texts
    for name in ("rank_fields", "max_chunks_per_doc"):
        fields.pop(name, None)
    return request, texts, _encoder.encode(fields)


def worst_search_units(query: str, documents: list[str], max_tokens_per_doc: int | None) -> int:
    """The most search units a rerank can be billed, as Cohere counts them: each document (cut to
    `max_tokens_per_doc`) with the query is one chunk per 500 tokens, 100 chunks a unit; a text
    has at most as many tokens as bytes."""
    query_tokens = len(query.encode())
    cut = max_tokens_per_doc or DEFAULT_MAX_TOKENS_PER_DOC
    chunks = sum(math.ceil((min(len(d.encode()), cut) + query_tokens) / TOKENS_PER_CHUNK) or 1 for d in documents)
    return math.ceil(chunks / DOCUMENTS_PER_SEARCH_UNIT)
