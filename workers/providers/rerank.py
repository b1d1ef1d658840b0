"""Rerank, whatever the provider: the request the edge checked, and the answer in Cohere's v2 shape.

Reference: https://docs.cohere.com/reference/rerank. The edge sends documents as strings (objects
already turned into text). Every adapter answers `{"id", "results": [{"index",
"relevance_score"}], "meta": {"api_version", "billed_units"}}`, results most relevant first and
cut to `top_n`; with `return_documents` each result carries its `document: {"text"}` (Cohere's v1
field, which the gateway keeps for v1 clients). `billed_units` says what was metered: Cohere's
`search_units`, or `input_tokens` for token-metered servers (`meta.tokens` too).
"""

from __future__ import annotations

from typing import Any

import msgspec

from workers.providers.errors import invalid_answer, invalid_request
from workers.providers.request_body import RequestBody
from workers.usage import Usage, estimate_tokens


class RerankAsk(msgspec.Struct, frozen=True):
    model: str = ""
    query: str = ""
    documents: list[str] = []
    top_n: int | None = None
    return_documents: bool | None = None
    max_tokens_per_doc: int | None = None


class Ranked(msgspec.Struct, frozen=True):
    index: int
    relevance_score: float
    relevant_spans: list[Any] | None = None  # (Cohere's rerank v5, when asked for)


_ask_decoder = msgspec.json.Decoder(RerankAsk)
_encoder = msgspec.json.Encoder()
# Handled by the gateway, never sent upstream: `return_documents`, and the gateway-only fields of
# every request (its timeout, client-supplied upstreams, routing knobs).
GATEWAY_FIELDS = frozenset(
    {"return_documents", "timeout", "api_base", "base_url", "api_key", "api_version", "num_retries", "fallbacks"}
)


def rerank_ask(body: RequestBody) -> RerankAsk:
    try:
        return _ask_decoder.decode(body.raw)
    except msgspec.MsgspecError as exc:
        raise invalid_request(f"the request does not fit the rerank API: {exc}") from None


def estimated_tokens(ask: RerankAsk) -> Usage:
    """Each document is read with the query: their text at 4 characters a token."""
    chars = sum(len(ask.query) + len(d) for d in ask.documents)
    return Usage(prompt_tokens=estimate_tokens(chars), estimated=True)


def rerank_answer(answer_id: str, ranked: list[Ranked], ask: RerankAsk, usage: Usage) -> bytes:
    if any(not 0 <= r.index < len(ask.documents) for r in ranked):
        raise invalid_answer("the upstream ranked a document that was not sent")
    ordered = sorted(ranked, key=lambda r: r.relevance_score, reverse=True)[: ask.top_n or None]
    results: list[dict[str, Any]] = []
    for r in ordered:
        result: dict[str, Any] = {"index": r.index, "relevance_score": r.relevance_score}
        if r.relevant_spans is not None:
            result["relevant_spans"] = r.relevant_spans
        if ask.return_documents:
            result["document"] = {"text": ask.documents[r.index]}
        results.append(result)
    meta: dict[str, Any] = {"api_version": {"version": "2"}}
    search_units = usage.units.search_units if usage.units is not None else 0
    if search_units:
        meta["billed_units"] = {"search_units": search_units}
    else:
        meta["billed_units"] = {"input_tokens": usage.prompt_tokens}
        meta["tokens"] = {"input_tokens": usage.prompt_tokens}
    return _encoder.encode({"id": answer_id, "results": results, "meta": meta})
