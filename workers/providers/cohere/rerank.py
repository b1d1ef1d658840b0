"""Cohere's rerank: POST {api_base}/v2/rerank, billed in search units.

Reference: https://docs.cohere.com/reference/rerank (request `model`, `query`, `documents`,
`top_n`, `max_tokens_per_doc`; answer `results[{index, relevance_score}]` and
`meta.billed_units.search_units`). Fields the gateway does not read (`priority`,
`relevant_spans`, ...) go on as the client sent them.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from llmgw.contracts import Units
from workers.providers.errors import invalid_answer
from workers.providers.request_body import RequestBody
from workers.providers.rerank import GATEWAY_FIELDS, Ranked, RerankAsk
from workers.usage import Usage

DOCUMENTS_PER_SEARCH_UNIT = 100


class _Result(msgspec.Struct):
    index: int
    relevance_score: float
    relevant_spans: list[Any] | None = None


class _Billed(msgspec.Struct):
    search_units: int | float | None = None


class _Meta(msgspec.Struct):
    billed_units: _Billed | None = None


class _RerankAnswer(msgspec.Struct):
    id: str | None = None
    results: list[_Result] = []
    meta: _Meta | None = None


_answer_decoder = msgspec.json.Decoder(_RerankAnswer)
_encoder = msgspec.json.Encoder()


def rerank_request_to_cohere(body: RequestBody, upstream_model: str) -> bytes:
    fields = {k: v for k, v in body.fields().items() if k not in GATEWAY_FIELDS}
    fields["model"] = upstream_model
    return _encoder.encode(fields)


def cohere_search_units_to_usage(billed: _Billed | None, ask: RerankAsk) -> Usage:
    """The search units Cohere billed; when it says none, one per 100 documents (estimated)."""
    if billed is not None and billed.search_units:
        return Usage(units=Units(search_units=math.ceil(billed.search_units)))
    units = max(math.ceil(len(ask.documents) / DOCUMENTS_PER_SEARCH_UNIT), 1)
    return Usage(units=Units(search_units=units), estimated=True)


def cohere_rerank_to_ranked(content: bytes, ask: RerankAsk) -> tuple[str | None, list[Ranked], Usage]:
    try:
        answer = _answer_decoder.decode(content)
    except msgspec.MsgspecError:
        raise invalid_answer("Cohere's rerank answer could not be read") from None
    ranked = [Ranked(r.index, r.relevance_score, r.relevant_spans) for r in answer.results]
    billed = answer.meta.billed_units if answer.meta is not None else None
    return answer.id, ranked, cohere_search_units_to_usage(billed, ask)
