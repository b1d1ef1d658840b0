"""How each operation's answer comes back from an adapter, and which adapter method makes it.

- `WHOLE`: `await method(deployment, request, upstream_model, body) -> Completion` (an answer in one
  reply);
- `CHUNKS`: `method(...)` yields OpenAI-style chunk JSON documents (bytes) and the Usage when known,
  relayed as a stream;
- `RAW`: `method(...)` yields a NativeHead, then the answer's bytes as the upstream sent them, and a
  Usage last: relayed with the upstream's status and headers (native passthrough, and routes whose
  answers are the provider's own format).

An operation a provider does not offer answers 400 from the adapter base (`Provider.unsupported`).
"""

from __future__ import annotations

from llmgw.contracts import Operation, UpstreamRequest


class AnswerKind:
    WHOLE = "whole"
    CHUNKS = "chunks"
    RAW = "raw"


# operation -> ((kind, method) for a whole answer, (kind, method) for a stream)
OPERATIONS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    Operation.CHAT: ((AnswerKind.WHOLE, "chat"), (AnswerKind.CHUNKS, "chat_stream")),
    Operation.EMBEDDINGS: ((AnswerKind.WHOLE, "embeddings"), (AnswerKind.WHOLE, "embeddings")),
    Operation.NATIVE: ((AnswerKind.RAW, "native"), (AnswerKind.RAW, "native")),
    Operation.RESPONSES: ((AnswerKind.RAW, "responses"), (AnswerKind.RAW, "responses")),
    Operation.TRANSCRIPTION: ((AnswerKind.RAW, "transcription"), (AnswerKind.RAW, "transcription")),
    Operation.SPEECH: ((AnswerKind.RAW, "speech"), (AnswerKind.RAW, "speech")),
    Operation.COMPLETIONS: ((AnswerKind.WHOLE, "completions"), (AnswerKind.CHUNKS, "completions_stream")),
    Operation.IMAGES: ((AnswerKind.WHOLE, "images"), (AnswerKind.WHOLE, "images")),
    Operation.MODERATION: ((AnswerKind.WHOLE, "moderations"), (AnswerKind.WHOLE, "moderations")),
    Operation.RERANK: ((AnswerKind.WHOLE, "rerank"), (AnswerKind.WHOLE, "rerank")),
    Operation.COUNT_TOKENS: ((AnswerKind.WHOLE, "count_tokens"), (AnswerKind.WHOLE, "count_tokens")),
}


def answer_kind(request: UpstreamRequest) -> tuple[str, str]:
    """(AnswerKind, adapter method) of a request."""
    whole, stream = OPERATIONS[request.operation]
    return stream if request.stream else whole
