"""OpenAI embeddings requests as Bedrock InvokeModel calls to Amazon Titan text embeddings.

Reference: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html
and the Titan Text Embeddings request / response bodies in the Bedrock user guide:
`{"inputText": "...", "dimensions": 256|512|1024, "normalize": true}` (dimensions: v2 only) ->
`{"embedding": [...], "inputTextTokenCount": n}`. Titan embeds one text per call, so a list
input becomes one InvokeModel call per item.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec

from llmgw.contracts import ErrorCode, ErrorType
from workers.providers.base import UpstreamError
from workers.usage import embeddings_usage_to_openai


class _EmbeddingsRequest(msgspec.Struct):
    input: str | list[Any]
    dimensions: int | None = None
    encoding_format: str | None = None


class TitanRequest(msgspec.Struct, omit_defaults=True):
    inputText: str
    dimensions: int | None = None


class TitanResponse(msgspec.Struct):
    embedding: list[float]
    inputTextTokenCount: int = 0


_request_decoder = msgspec.json.Decoder(_EmbeddingsRequest)
_titan_decoder = msgspec.json.Decoder(TitanResponse)
_encoder = msgspec.json.Encoder()


def _invalid(message: str, param: str | None = None) -> UpstreamError:
    return UpstreamError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def is_titan_embedding_model(model_id: str) -> bool:
    return model_id.split(":", 1)[0].startswith("amazon.titan-embed") or "/amazon.titan-embed" in model_id


def embeddings_request_to_titan(body: bytes) -> tuple[list[bytes], bool]:
    """(one Titan request body per input text, whether the client asked for base64 vectors)."""
    try:
        req = _request_decoder.decode(body)
    except msgspec.DecodeError:
        raise _invalid("'input' must be a string or an array of strings", "input") from None
    texts = [req.input] if isinstance(req.input, str) else req.input
    if not texts or not all(isinstance(t, str) for t in texts):
        raise _invalid("Bedrock Titan embeddings take text: 'input' must be a string or an array of strings", "input")
    return [_encoder.encode(TitanRequest(t, req.dimensions)) for t in texts], req.encoding_format == "base64"


def decode_titan(content: bytes) -> TitanResponse:
    try:
        return _titan_decoder.decode(content)
    except msgspec.DecodeError:
        message = "Bedrock answered an embedding call with invalid JSON"
        raise UpstreamError(502, message, ErrorType.API, ErrorCode.UPSTREAM_ERROR) from None


def titan_to_embeddings(results: list[TitanResponse], model: str, as_base64: bool) -> tuple[bytes, int]:
    """(the OpenAI embeddings list body, the prompt tokens it used)."""
    data = []
    for index, r in enumerate(results):
        vector: Any = r.embedding
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{len(r.embedding)}f", *r.embedding)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(r.inputTextTokenCount for r in results)
    body = {"object": "list", "data": data, "model": model, "usage": embeddings_usage_to_openai(tokens)}
    return _encoder.encode(body), tokens
