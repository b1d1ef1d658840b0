"""Rerank on OpenAI-compatible servers, at `{api_base}/rerank`, in one of two wire formats:

- `cohere` (the default): vLLM, Infinity and Jina take Cohere's request (`model`, `query`,
  `documents`, `top_n`) and answer `results: [{index, relevance_score, document?}]` with the
  tokens they read in `usage` (`prompt_tokens` or `total_tokens`).
  https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html (Re-rank API),
  https://api.jina.ai/redoc#tag/rerank, https://michaelfeil.github.io/infinity/ (`/rerank`);
- `tei`: HuggingFace text-embeddings-inference takes `{query, texts}` and answers
  `[{index, score}]`, without usage (estimated here).
  https://huggingface.github.io/text-embeddings-inference/ (POST /rerank).
A deployment picks the second with `rerank_format: tei`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from llmgw.config import Deployment
from workers.providers.errors import invalid_answer, invalid_request
from workers.providers.rerank import Ranked, RerankAsk, estimated_tokens
from workers.usage import Usage

RERANK_FORMAT = "rerank_format"
FORMATS = ("cohere", "tei")


class _Result(msgspec.Struct):
    index: int
    relevance_score: float


class _Tokens(msgspec.Struct):
    prompt_tokens: int | None = None
    total_tokens: int | None = None


class _Answer(msgspec.Struct):
    id: str | None = None
    results: list[_Result] | None = None
    data: list[_Result] | None = None  # (Infinity's older answers)
    usage: _Tokens | None = None


class _TeiResult(msgspec.Struct):
    index: int
    score: float


_answer_decoder = msgspec.json.Decoder(_Answer)
_tei_decoder = msgspec.json.Decoder(list[_TeiResult])
_encoder = msgspec.json.Encoder()


def rerank_format(deployment: Deployment) -> str:
    name = str(deployment.option(RERANK_FORMAT) or "cohere").lower()
    if name not in FORMATS:
        raise invalid_request(f"deployment {deployment.id}: rerank_format {name!r} is not one of {', '.join(FORMATS)}")
    return name


def server_request(ask: RerankAsk, upstream_model: str, wire: str) -> bytes:
    if wire == "tei":
        return _encoder.encode({"query": ask.query, "texts": ask.documents, "truncate": True})
    body: dict[str, Any] = {"model": upstream_model, "query": ask.query, "documents": ask.documents}
    if ask.top_n is not None:
        body["top_n"] = ask.top_n
    return _encoder.encode(body)


def server_answer(content: bytes, ask: RerankAsk, wire: str) -> tuple[str | None, list[Ranked], Usage]:
    """(the server's answer id, the scores, the tokens it reports or an estimate)."""
    try:
        if wire == "tei":
            return None, [Ranked(r.index, r.score) for r in _tei_decoder.decode(content)], estimated_tokens(ask)
        answer = _answer_decoder.decode(content)
    except msgspec.MsgspecError:
        raise invalid_answer("the rerank server's answer is not a rerank result") from None
    ranked = [Ranked(r.index, r.relevance_score) for r in (answer.results or answer.data or [])]
    tokens = answer.usage.prompt_tokens or answer.usage.total_tokens if answer.usage is not None else None
    return answer.id, ranked, Usage(prompt_tokens=tokens) if tokens else estimated_tokens(ask)
