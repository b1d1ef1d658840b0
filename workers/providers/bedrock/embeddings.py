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

from workers.providers.errors import invalid_answer, invalid_request
from workers.providers.openai_request import EmbeddingsRequest
from workers.usage import embeddings_usage_to_openai


class TitanRequest(msgspec.Struct, omit_defaults=True):
    inputText: str
    dimensions: int | None = None


class TitanResponse(msgspec.Struct):
    embedding: list[float]
    inputTextTokenCount: int = 0


_titan_decoder = msgspec.json.Decoder(TitanResponse)
_encoder = msgspec.json.Encoder()


def is_titan_embedding_model(model_id: str) -> bool:
    return model_id.split(":", 1)[0].startswith("amazon.titan-embed") or "/amazon.titan-embed" in model_id


def embeddings_request_to_titan(req: EmbeddingsRequest) -> tuple[list[bytes], bool]:
    """(one Titan request body per input text, whether the client asked for base64 vectors)."""
    texts = req.texts()
    if texts is None:
        raise invalid_request("Bedrock Titan embeddings take text: 'input' must be a string or an array of strings", "input")
    return [_encoder.encode(TitanRequest(t, req.dimensions)) for t in texts], req.encoding_format == "base64"


def decode_titan(content: bytes) -> TitanResponse:
    try:
        return _titan_decoder.decode(content)
    except msgspec.DecodeError:
        raise invalid_answer("Bedrock answered an embedding call with invalid JSON") from None


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
