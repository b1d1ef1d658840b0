"""Fake HuggingFace text-embeddings-inference (TEI) rerank server for llmgw's tests.

The wire format follows TEI's public API reference
(https://huggingface.github.io/text-embeddings-inference/, POST /rerank): a body
`{"query", "texts", "return_text"?, "raw_scores"?, "truncate"?}` answered with
`[{"index", "score", "text"?}]`, most relevant first, with no usage; errors are
`{"error", "error_type"}` (422 for a body that does not fit). With `--api-key` it wants
`Authorization: Bearer <key>` (401 otherwise), as TEI started with `--api-key` does.

Scores: the share of the query's words found in the text (fake_openai_media.relevance).
GET /_fake/stats -> {"requests", "by_model", "auth_failures", "last_request"}; POST /_fake/reset.

CLI:  python -m bench.fake_tei --host 127.0.0.1 --port 0 [--api-key KEY]   (prints "READY <port>")
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.fake_http import FakeServerHandle, Request, Response, fake_cli, start_app
from bench.fake_openai_media import relevance
from bench.fake_openai_stats import FakeStats

JSON_HEADERS = {"Content-Type": "application/json"}


def _json(doc: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(doc).encode(), JSON_HEADERS)


def _error(status: int, message: str, kind: str) -> Response:
    return _json({"error": message, "error_type": kind}, status)


class FakeTEI:
    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.stats = FakeStats()
        self.last_request: dict[str, Any] | None = None

    async def handle(self, request: Request) -> Response:
        if request.path == "/rerank" and request.method == "POST":
            return self._rerank(request)
        if request.path == "/_fake/stats" and request.method == "GET":
            return _json({**self.stats.as_dict(), "last_request": self.last_request})
        if request.path == "/_fake/reset" and request.method == "POST":
            self.stats.reset()
            return _json({"ok": True})
        return _error(404, f"Not Found: {request.method} {request.path}", "NotFound")

    def _rerank(self, request: Request) -> Response:
        self.stats.requests += 1
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            self.stats.auth_failures += 1
            return _error(401, "Unauthorized", "Unauthorized")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(422, "Failed to parse the request body as JSON", "Validation")
        query, texts = (
            body.get("query") if isinstance(body, dict) else None,
            body.get("texts") if isinstance(body, dict) else None,
        )
        if not isinstance(query, str) or not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _error(422, "Json deserialize error: missing field `query` or `texts`", "Validation")
        self.last_request = body
        self.stats.by_model["tei"] = self.stats.by_model.get("tei", 0) + 1
        ranked = sorted(({"index": i, "score": relevance(query, t)} for i, t in enumerate(texts)), key=lambda r: -r["score"])
        if body.get("return_text"):
            for r in ranked:
                r["text"] = texts[r["index"]]
        return _json(ranked)


async def start_fake(host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> tuple[FakeServerHandle, int]:
    return await start_app(FakeTEI(api_key), host, port)


def main(argv: list[str] | None = None) -> None:
    fake_cli(
        "python -m bench.fake_tei",
        __doc__,
        lambda a: start_fake(a.host, a.port, a.api_key),
        argv,
        "require 'Authorization: Bearer <key>'",
    )


if __name__ == "__main__":
    sys.exit(main())
