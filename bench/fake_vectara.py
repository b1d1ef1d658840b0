"""Fake Vectara upstream (v2 query API) for llmgw's tests and benchmarks.

The wire format follows Vectara's public REST API reference:
  https://docs.vectara.com/docs/rest-api/query-corpus  (POST /v2/corpora/{corpus_key}/query with
      `{"query", "search", "generation": {"generation_preset_name", "max_used_search_results",
      "model_parameters": {"max_tokens", "temperature"}}, "stream_response"}`; a whole answer
      `{"summary", "response_language", "search_results", "factual_consistency_score", "warnings"}`;
      a stream of server-sent events (`event:` + `data:` lines) search_results, generation_chunk
      {"generation_chunk"}, generation_end, factual_consistency_score, end, and error {"messages"})
  and its error bodies `{"messages": [...], "request_id", "field_errors"?}` (400 bad request,
  403 when the `x-api-key` header does not allow querying, 404 for an unknown corpus, 429).
Credential: `x-api-key: <key>`.

The answer is deterministic: the summary is "w0 w1 ... w{n-1}" with n =
generation.model_parameters.max_tokens or 8, streamed one word per generation_chunk; there are
two search results quoting the query. Vectara reports no token counts (nor does the fake).

Faults by corpus key (the `{corpus_key}` of the path): fake-error-{400,404,429,500},
fake-slow-<ms>, fake-stream-fail (three chunks, then the connection drops), fake-stream-error (an
`error` event after two chunks). GET /_fake/stats -> {"requests", "by_model" (by corpus key),
"auth_failures", "last_request"}; POST /_fake/reset.

CLI:  python -m bench.fake_vectara --host 127.0.0.1 --port 0 [--api-key KEY]  (prints "READY <port>")
Code: handle, port = await start_fake(api_key="zqt_x"); ...; await handle.stop()
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from bench.fake_http import DropConnection, FakeServerHandle, Request, Response, StreamResponse, fake_cli, start_app, suffix_ms
from bench.fake_openai_payloads import DEFAULT_COMPLETION_TOKENS, WORDS
from bench.fake_openai_stats import FakeStats

JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
STREAM_FAIL_AFTER_CHUNKS = 3
FACTUAL_CONSISTENCY = 0.81

FAULTS: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = {
    "fake-error-400": (400, {"messages": ["Bad request"], "field_errors": {"query": "fake bad request"}}, {}),
    "fake-error-404": (404, {"id": "fake-error-404", "messages": ["Corpus fake-error-404 not found."]}, {}),
    "fake-error-429": (429, {"messages": ["Too many requests, slow down."]}, {"retry-after": "1"}),
    "fake-error-500": (500, {"messages": ["An internal error occurred."]}, {}),
}


def _request_id() -> str:
    return os.urandom(8).hex()


def _json(status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    if status >= 400:
        doc = {**doc, "request_id": _request_id()}
    return Response(status, json.dumps(doc).encode(), {**JSON_HEADERS, **(headers or {})})


def _event(kind: str, doc: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **doc})}\n\n".encode()


def search_results(query: str, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "text": f"Passage {i} about {query}",
            "score": round(0.9 - 0.1 * i, 2),
            "part_metadata": {"lang": "eng", "offset": 0, "len": len(query)},
            "document_metadata": {"title": f"Document {i}"},
            "document_id": f"doc-{i}",
            "request_corpora_index": 0,
        }
        for i in range(min(2, limit))
    ]


class FakeVectara:
    """The request handler: routing, auth, faults and responses."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.stats = FakeStats()
        self.last_request: dict[str, Any] | None = None

    async def handle(self, request: Request) -> Response | StreamResponse:
        parts = request.path.split("/")  # "", "v2", "corpora", key, "query"
        if request.method == "POST" and len(parts) == 5 and parts[1:3] == ["v2", "corpora"] and parts[4] == "query":
            return await self._query(request, parts[3])
        if request.path == "/_fake/stats" and request.method == "GET":
            return _json(200, {**self.stats.as_dict(), "last_request": self.last_request})
        if request.path == "/_fake/reset" and request.method == "POST":
            self.stats.reset()
            return _json(200, {"ok": True})
        return _json(404, {"messages": [f"Not found: {request.method} {request.path}"]})

    async def _query(self, request: Request, corpus: str) -> Response | StreamResponse:
        self.stats.requests += 1
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            self.stats.auth_failures += 1
            return _json(403, {"messages": ["Permissions do not allow querying the corpus."]})
        try:
            body = json.loads(request.body)
        except ValueError:
            return _json(400, {"messages": ["Request body is not valid JSON."]})
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, str) or not query.strip():
            return _json(400, {"messages": ["Bad request"], "field_errors": {"query": "must not be empty"}})
        self.last_request = body
        self.stats.by_model[corpus] = self.stats.by_model.get(corpus, 0) + 1
        if corpus in FAULTS:
            status, doc, headers = FAULTS[corpus]
            return _json(status, doc, headers)
        if delay := suffix_ms(corpus, "fake-slow-"):
            await asyncio.sleep(delay / 1000)
        generation = body.get("generation") or {}
        limit = (generation.get("model_parameters") or {}).get("max_tokens")
        words = WORDS[: DEFAULT_COMPLETION_TOKENS if limit is None else min(int(limit), len(WORDS))]
        results = search_results(query, int((body.get("search") or {}).get("limit") or 10))
        if body.get("stream_response"):
            return StreamResponse(self._events(corpus, words, results), headers=SSE_HEADERS)
        return _json(
            200,
            {
                "summary": " ".join(words),
                "response_language": "eng",
                "search_results": results,
                "factual_consistency_score": FACTUAL_CONSISTENCY,
                "warnings": [],
            },
        )

    async def _events(self, corpus: str, words: list[str], results: list[dict[str, Any]]):
        yield _event("search_results", {"search_results": results})
        stop_after = {"fake-stream-fail": STREAM_FAIL_AFTER_CHUNKS, "fake-stream-error": 2}.get(corpus)
        for i, word in enumerate(words[:stop_after] if stop_after is not None else words):
            await asyncio.sleep(0)
            yield _event("generation_chunk", {"generation_chunk": word if i == 0 else " " + word})
        if corpus == "fake-stream-fail":
            raise DropConnection
        if corpus == "fake-stream-error":
            yield _event("error", {"messages": ["The generation failed."]})
            yield _event("end", {})
            return
        yield _event("generation_end", {})
        yield _event("factual_consistency_score", {"factual_consistency_score": FACTUAL_CONSISTENCY})
        yield _event("end", {})


async def start_fake(host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> tuple[FakeServerHandle, int]:
    """Start the fake upstream on the running loop; returns (handle, actual port)."""
    return await start_app(FakeVectara(api_key), host, port)


def main(argv: list[str] | None = None) -> None:
    fake_cli(
        "python -m bench.fake_vectara",
        __doc__,
        lambda a: start_fake(a.host, a.port, a.api_key),
        argv,
        "require the `x-api-key` header",
    )


if __name__ == "__main__":
    sys.exit(main())
