"""The OpenAPI entries of the legacy completions, image generation, moderation and rerank routes
(merged into the document by gateway/openapi.py): their request Structs, their operations, what
the edge checks beyond the Structs' types, and their answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.legacy_completions import CompletionRequest
from gateway.media_schemas import ImageGenerationRequest, ModerationRequest, RerankRequest
from gateway.openapi_schemas import ANY_OBJECT, obj

MEDIA_REQUEST_TYPES = (CompletionRequest, ImageGenerationRequest, ModerationRequest, RerankRequest)

ModelCall = Callable[..., dict[str, Any]]


def media_paths(model_call: ModelCall) -> dict[str, Any]:
    rerank = model_call(
        "Rerank documents by their relevance to a query (Cohere's request and answer), served by Cohere and by "
        "OpenAI-compatible rerank servers (vLLM, Infinity, Jina, text-embeddings-inference).",
        "RerankRequest",
        "RerankResponse",
        None,
    )
    return {
        "/v1/completions": model_call(
            "Create a text completion (OpenAI's legacy completions), served by any model.",
            "CompletionRequest",
            "TextCompletion",
            "TextCompletionStreamEvent",
        ),
        "/v1/images/generations": model_call(
            "Generate images (OpenAI format).", "ImageGenerationRequest", "ImagesResponse", None
        ),
        "/v1/moderations": model_call(
            "Classify text (and images) as harmful (OpenAI format).", "ModerationRequest", "Moderation", None
        ),
        "/v1/rerank": rerank,
        "/v2/rerank": rerank,
    }


def media_checks(components: dict[str, Any]) -> None:
    """What the routes refuse beyond the Structs' types: an empty or mixed `prompt` list, a
    moderation part without its content, a document object without `text` (and no `rank_fields`)."""
    tokens = {"type": "array", "items": {"type": "integer"}, "minItems": 1}
    components["CompletionRequest"]["properties"]["prompt"] = {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
            tokens,
            {"type": "array", "items": tokens, "minItems": 1},
        ]
    }
    components["ModerationPart"] = {
        "title": "ModerationPart",
        "oneOf": [
            obj(["type", "text"], type={"const": "text"}, text={"type": "string"}),
            obj(["type", "image_url"], type={"const": "image_url"}, image_url={"$ref": "#/components/schemas/ImageURL"}),
        ],
    }
    documents = components["RerankRequest"]["properties"]["documents"]
    documents["items"] = {"anyOf": [{"type": "string"}, obj(["text"], text={"type": "string"})]}
    # `stream` is refused when true (streamed partial images are not offered).
    components["ImageGenerationRequest"]["properties"]["stream"] = {"enum": [False, None], "default": None}


MEDIA_RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "TextCompletion": obj(
        ["id", "object", "choices"],
        id={"type": "string"},
        object={"const": "text_completion"},
        model={"type": "string"},
        choices={
            "type": "array",
            "items": obj(["text", "index"], text={"type": "string"}, index={"type": "integer"}),
        },
        usage=ANY_OBJECT,
    ),
    "TextCompletionStreamEvent": obj(
        ["data"],
        data={"type": "string", "description": "A text_completion chunk as JSON, or `[DONE]` last."},
        event={"const": "message"},
    ),
    "ImagesResponse": obj(["created", "data"], created={"type": "integer"}, data={"type": "array", "items": ANY_OBJECT}),
    "Moderation": obj(
        ["id", "model", "results"],
        id={"type": "string"},
        model={"type": "string"},
        results={"type": "array", "items": obj(["flagged"], flagged={"type": "boolean"})},
    ),
    "RerankResponse": obj(
        ["results", "meta"],
        id={"type": "string"},
        results={
            "type": "array",
            "items": obj(["index", "relevance_score"], index={"type": "integer"}, relevance_score={"type": "number"}),
        },
        meta=obj(["billed_units"], billed_units=ANY_OBJECT),
    ),
}
