"""Fake Cohere upstream (v2 API) for llmgw's tests and benchmarks.

The wire format follows Cohere's public API reference:
  https://docs.cohere.com/reference/chat          (POST /v2/chat: message.content[], tool_calls,
                                                   finish_reason, usage.billed_units / usage.tokens)
  https://docs.cohere.com/reference/chat-stream   (SSE `event:` + `data:` pairs: message-start,
                                                   content-start, content-delta, content-end,
                                                   tool-plan-delta, tool-call-start, tool-call-delta,
                                                   tool-call-end, message-end with delta.usage)
  https://docs.cohere.com/reference/embed         (POST /v2/embed: embeddings.float, meta.billed_units)
  https://docs.cohere.com/reference/rerank        (POST /v2/rerank: results[{index, relevance_score}],
                                                   meta.billed_units.search_units)
  https://docs.cohere.com/reference/errors        (`{"id", "message"}` bodies; 401 "invalid api token")
Credential: `Authorization: Bearer <key>` (the scheme in any case, as Cohere accepts it).

Token accounting (tests compare usage rows against it):
  usage.tokens.input_tokens       = words in every message text + number of messages
  usage.billed_units.input_tokens = words in every message text (no template overhead)
  output_tokens                   = words of the answer: "w0 w1 ... w{n-1}" with n = max_tokens if
                                    given (finish MAX_TOKENS) else 8 (COMPLETE); a tool call costs
                                    the words of its tool_plan; an answer after a tool result is
                                    "tool said: <result>"
  embed: meta.billed_units.input_tokens = words of every text; 8-dim vectors (or output_dimension)
  rerank: relevance_score = share of the query's words in the document; search_units = one per
          100 chunks, a document (cut to max_tokens_per_doc words, 4096 by default) with the
          query making one chunk per 500 words; fields v2 does not take (return_documents, ...) 400
Tool calls: when the request has tools and its last message is a user message that mentions
"weather", the answer is a call of the first tool with arguments {"location": "Paris"}.

Faults by model name: fake-error-{400,401,429,500}, fake-slow-<ms>, fake-stream-fail (three
words, then the connection drops). GET /_fake/stats -> {"requests", "by_model", "auth_failures",
"last_request"}; POST /_fake/reset.

CLI:  python -m bench.fake_cohere --host 127.0.0.1 --port 0 [--api-key KEY]   (prints "READY <port>")
Code: handle, port = await start_fake(api_key="co-x"); ...; await handle.stop()
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import sys
from typing import Any

from bench.fake_http import DropConnection, FakeServerHandle, Request, Response, StreamResponse, fake_cli, start_app, suffix_ms
from bench.fake_openai_media import relevance
from bench.fake_openai_payloads import DEFAULT_COMPLETION_TOKENS, EMBEDDING_DIM, WORDS, embedding_vector
from bench.fake_openai_stats import FakeStats

JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
STREAM_FAIL_AFTER_WORDS = 3
TOOL_PLAN = "I will look up the weather."
RERANK_FIELDS = frozenset({"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority", "relevant_spans"})
RERANK_CHUNK_TOKENS = 500
RERANK_DOCUMENTS_PER_UNIT = 100
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")

FAULTS: dict[str, tuple[int, str, dict[str, str]]] = {
    "fake-error-400": (400, "invalid request: fake bad request", {}),
    "fake-error-401": (401, "invalid api token", {}),
    "fake-error-429": (429, "You are past the per minute request limit, please wait and try again later.", {"retry-after": "1"}),
    "fake-error-500": (500, "internal server error, this has been reported to our developers", {}),
}

_ids = itertools.count(1)
_prefix = os.urandom(4).hex()


def _new_id() -> str:
    return f"{_prefix}-{next(_ids):08x}-0000-4000-8000-fake"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps({"id": _new_id(), "message": message}).encode(), {**JSON_HEADERS, **(headers or {})})


def _ok(doc: dict[str, Any]) -> Response:
    return Response(200, json.dumps(doc).encode(), JSON_HEADERS)


class BadRequest(ValueError):
    pass


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []


def count_words(messages: list[dict[str, Any]]) -> int:
    return sum(len(t.split()) for m in messages for t in _texts(m.get("content")))


def plan_answer(body: dict[str, Any]) -> dict[str, Any]:
    """What the fake answers: text words or a tool call, the finish reason and the output tokens."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("invalid request: messages must be a non-empty list")
    if any(m.get("role") not in ("system", "user", "assistant", "tool") for m in messages):
        raise BadRequest("invalid request: message role must be one of system, user, assistant, tool")
    last = messages[-1]
    tools = body.get("tools") or []
    if tools and last.get("role") == "user" and any("weather" in t.lower() for t in _texts(last.get("content"))):
        name = tools[0]["function"]["name"]
        call = {
            "id": f"{name}_{_new_id()[:12]}",
            "type": "function",
            "function": {"name": name, "arguments": '{"location": "Paris"}'},
        }
        return {"tool_call": call, "words": [], "finish": "TOOL_CALL", "output": len(TOOL_PLAN.split())}
    if last.get("role") == "tool":
        words = ["tool", "said:", *" ".join(_texts(last.get("content"))).split()]
        return {"tool_call": None, "words": words, "finish": "COMPLETE", "output": len(words)}
    limit = body.get("max_tokens")
    n = DEFAULT_COMPLETION_TOKENS if limit is None else min(int(limit), len(WORDS))
    return {"tool_call": None, "words": WORDS[:n], "finish": "COMPLETE" if limit is None else "MAX_TOKENS", "output": n}


def usage_doc(words_in: int, messages: int, output: int) -> dict[str, Any]:
    return {
        "billed_units": {"input_tokens": words_in, "output_tokens": output},
        "tokens": {"input_tokens": words_in + messages, "output_tokens": output},
    }


def _event(kind: str, doc: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **doc})}\n\n".encode()


class FakeCohere:
    """The request handler: routing, auth, faults and responses."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.stats = FakeStats()
        self.last_request: dict[str, Any] | None = None

    async def handle(self, request: Request) -> Response | StreamResponse:
        route = {
            ("POST", "/v2/chat"): self._chat,
            ("POST", "/v2/embed"): self._embed,
            ("POST", "/v2/rerank"): self._rerank,
        }.get((request.method, request.path))
        if route is not None:
            return await self._api_call(request, route)
        if request.path == "/_fake/stats" and request.method == "GET":
            return _ok({**self.stats.as_dict(), "last_request": self.last_request})
        if request.path == "/_fake/reset" and request.method == "POST":
            self.stats.reset()
            return _ok({"ok": True})
        return _error(404, f"Not Found: {request.method} {request.path}")

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return self.api_key is None or (scheme.lower() == "bearer" and token == self.api_key)

    async def _api_call(self, request: Request, route) -> Response | StreamResponse:
        self.stats.requests += 1
        if not self._authorized(request):
            self.stats.auth_failures += 1
            return _error(401, "invalid api token")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(400, "invalid request: the request body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
            return _error(400, "invalid request: model must be specified")
        self.last_request = body
        model = body["model"]
        self.stats.by_model[model] = self.stats.by_model.get(model, 0) + 1
        if model in FAULTS:
            status, message, headers = FAULTS[model]
            return _error(status, message, headers)
        if delay := suffix_ms(model, "fake-slow-"):
            await asyncio.sleep(delay / 1000)
        try:
            return await route(body)
        except BadRequest as exc:
            return _error(400, str(exc))

    async def _chat(self, body: dict[str, Any]) -> Response | StreamResponse:
        answer = plan_answer(body)
        usage = usage_doc(count_words(body["messages"]), len(body["messages"]), answer["output"])
        message_id = _new_id()
        if body.get("stream"):
            return StreamResponse(self._events(message_id, body["model"], answer, usage), headers=SSE_HEADERS)
        message: dict[str, Any] = {"role": "assistant"}
        if answer["tool_call"] is not None:
            message.update(tool_plan=TOOL_PLAN, tool_calls=[answer["tool_call"]])
        else:
            message["content"] = [{"type": "text", "text": " ".join(answer["words"])}]
        return _ok({"id": message_id, "message": message, "finish_reason": answer["finish"], "usage": usage})

    async def _events(self, message_id: str, model: str, answer: dict[str, Any], usage: dict[str, Any]):
        start = {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}
        yield _event("message-start", {"id": message_id, "delta": start})
        call = answer["tool_call"]
        if call is not None:
            for i, word in enumerate(TOOL_PLAN.split()):
                yield _event("tool-plan-delta", {"delta": {"message": {"tool_plan": word if i == 0 else " " + word}}})
            opened = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            yield _event("tool-call-start", {"index": 0, "delta": {"message": {"tool_calls": opened}}})
            arguments = call["function"]["arguments"]
            for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                yield _event(
                    "tool-call-delta", {"index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}}
                )
            yield _event("tool-call-end", {"index": 0})
        else:
            fail = model == "fake-stream-fail"
            yield _event("content-start", {"index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}})
            for i, word in enumerate(answer["words"][:STREAM_FAIL_AFTER_WORDS] if fail else answer["words"]):
                await asyncio.sleep(0)
                yield _event(
                    "content-delta", {"index": 0, "delta": {"message": {"content": {"text": word if i == 0 else " " + word}}}}
                )
            if fail:
                raise DropConnection
            yield _event("content-end", {"index": 0})
        yield _event("message-end", {"delta": {"finish_reason": answer["finish"], "usage": usage}})

    async def _embed(self, body: dict[str, Any]) -> Response:
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise BadRequest("invalid request: texts must be a non-empty list of strings")
        if body.get("input_type") not in INPUT_TYPES:
            raise BadRequest("invalid request: valid input_type must be provided with the provided model")
        types = body.get("embedding_types") or ["float"]
        if types != ["float"]:
            raise BadRequest("invalid request: the fake serves only float embeddings")
        dim = int(body.get("output_dimension") or EMBEDDING_DIM)
        vectors = [(embedding_vector(t.encode()) * (dim // EMBEDDING_DIM + 1))[:dim] for t in texts]
        words = sum(len(t.split()) for t in texts)
        return _ok(
            {
                "id": _new_id(),
                "embeddings": {"float": vectors},
                "texts": texts,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": words}},
                "response_type": "embeddings_by_type",
            }
        )

    async def _rerank(self, body: dict[str, Any]) -> Response:
        unknown = set(body) - RERANK_FIELDS
        if unknown:
            raise BadRequest(f"invalid request: unknown field(s) {', '.join(sorted(unknown))}")
        query, documents = body.get("query"), body.get("documents")
        if not isinstance(query, str) or not query:
            raise BadRequest("invalid request: query must be a non-empty string")
        if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
            raise BadRequest("invalid request: documents must be a non-empty list of strings")
        top_n = body.get("top_n")
        if top_n is not None and (not isinstance(top_n, int) or top_n < 1):
            raise BadRequest("invalid request: top_n must be a positive integer")
        limit = body.get("max_tokens_per_doc") or 4096
        scored = sorted(
            ({"index": i, "relevance_score": relevance(query, d)} for i, d in enumerate(documents)),
            key=lambda r: -r["relevance_score"],
        )
        chunks = sum(
            max(math.ceil((min(len(d.split()), limit) + len(query.split())) / RERANK_CHUNK_TOKENS), 1) for d in documents
        )
        return _ok(
            {
                "id": _new_id(),
                "results": scored[:top_n] if top_n else scored,
                "meta": {
                    "api_version": {"version": "2"},
                    "billed_units": {"search_units": math.ceil(chunks / RERANK_DOCUMENTS_PER_UNIT)},
                },
            }
        )


async def start_fake(host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> tuple[FakeServerHandle, int]:
    """Start the fake upstream on the running loop; returns (handle, actual port)."""
    return await start_app(FakeCohere(api_key), host, port)


def main(argv: list[str] | None = None) -> None:
    fake_cli(
        "python -m bench.fake_cohere",
        __doc__,
        lambda a: start_fake(a.host, a.port, a.api_key),
        argv,
        "require 'Authorization: Bearer <key>'",
    )


if __name__ == "__main__":
    sys.exit(main())
