"""Google's wire types (Gemini API and Vertex AI share them), as the adapter reads them.

References: https://ai.google.dev/api/generate-content (GenerateContentResponse, Candidate,
UsageMetadata, PromptFeedback), https://ai.google.dev/api/embeddings (batchEmbedContents),
the Vertex AI text-embeddings `:predict` response, and Google's error model
(https://cloud.google.com/apis/design/errors: `{"error": {"code", "message", "status", "details"}}`).
Only the fields the gateway uses are declared; msgspec skips the rest.
"""

from __future__ import annotations

from typing import Any

import msgspec


class FunctionCall(msgspec.Struct):
    name: str = ""
    args: dict[str, Any] | None = None
    id: str | None = None  # newer API versions number calls; OpenAI ids are made up when absent


class Part(msgspec.Struct):
    text: str | None = None
    thought: bool = False  # a thought summary of a thinking model, not the answer
    functionCall: FunctionCall | None = None


class Content(msgspec.Struct):
    role: str | None = None
    parts: list[Part] = []


class Candidate(msgspec.Struct):
    content: Content | None = None
    finishReason: str | None = None
    index: int = 0


class UsageMetadata(msgspec.Struct):
    promptTokenCount: int = 0  # all input tokens, cached content included
    candidatesTokenCount: int = 0
    cachedContentTokenCount: int = 0
    thoughtsTokenCount: int = 0  # thinking tokens, billed as output
    toolUsePromptTokenCount: int = 0  # results of built-in tools fed back as input
    totalTokenCount: int = 0


class PromptFeedback(msgspec.Struct):
    blockReason: str | None = None


class ErrorDetail(msgspec.Struct):
    type: str = msgspec.field(default="", name="@type")
    reason: str | None = None  # google.rpc.ErrorInfo (API_KEY_INVALID, ...)
    retryDelay: str | None = None  # google.rpc.RetryInfo ("27s")


class GoogleError(msgspec.Struct):
    code: int = 0
    message: str = ""
    status: str = ""
    details: list[ErrorDetail] = []


class ErrorEnvelope(msgspec.Struct):
    error: GoogleError | None = None


class GenerateContentResponse(msgspec.Struct):
    candidates: list[Candidate] = []
    usageMetadata: UsageMetadata | None = None
    promptFeedback: PromptFeedback | None = None
    modelVersion: str | None = None
    responseId: str | None = None
    error: GoogleError | None = None  # an error reported inside a stream


class UsageProbe(msgspec.Struct):
    """Just the usage of a GenerateContentResponse (native answers are relayed, not converted)."""

    usageMetadata: UsageMetadata | None = None


# ---- embeddings ----


class ContentEmbedding(msgspec.Struct):
    values: list[float] = []


class BatchEmbedContentsResponse(msgspec.Struct):
    embeddings: list[ContentEmbedding] = []


class EmbeddingStatistics(msgspec.Struct):
    token_count: float = 0  # (a protobuf Value: may be written as 6.0)
    truncated: bool = False


class VertexEmbedding(msgspec.Struct):
    values: list[float] = []
    statistics: EmbeddingStatistics | None = None


class VertexPrediction(msgspec.Struct):
    embeddings: VertexEmbedding | None = None


class PredictResponse(msgspec.Struct):
    predictions: list[VertexPrediction] = []


# ---- OAuth token endpoint ----


class TokenResponse(msgspec.Struct):
    access_token: str = ""
    expires_in: float = 3600
    token_type: str = "Bearer"


class TokenError(msgspec.Struct):
    error: str = ""
    error_description: str = ""


response_decoder = msgspec.json.Decoder(GenerateContentResponse)
usage_probe_decoder = msgspec.json.Decoder(UsageProbe | list[UsageProbe])
error_decoder = msgspec.json.Decoder(ErrorEnvelope | list[ErrorEnvelope])
batch_embed_decoder = msgspec.json.Decoder(BatchEmbedContentsResponse)
predict_decoder = msgspec.json.Decoder(PredictResponse)
token_decoder = msgspec.json.Decoder(TokenResponse)
token_error_decoder = msgspec.json.Decoder(TokenError)
encode = msgspec.json.Encoder().encode
