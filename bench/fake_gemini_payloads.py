"""Deterministic Gemini / Vertex AI answers for the fake upstream (see fake_gemini.py).

Token accounting (tests compare usage rows against it):
  promptTokenCount        = words in every text part (systemInstruction and contents)
                            + number of contents + 1 per non-text part (functionCall, functionResponse,
                            inlineData, fileData)
  candidatesTokenCount    = n per candidate, the reply being "w0 w1 ... w{n-1}", n = maxOutputTokens
                            if given (finishReason MAX_TOKENS when it binds) else 8, capped at 2000;
                            a function call costs FUNCTION_CALL_TOKENS
  cachedContentTokenCount = K when a text contains "cached:K"
  thoughtsTokenCount      = T when a text contains "think:T" (as a thinking model reports it)
  totalTokenCount         = prompt + candidates + thoughts
Function calls: when the request declares functions and its last content is a user text that
mentions "weather", each candidate calls the first declared function with {"location": "Paris"}.
A user turn holding functionResponse parts must follow a model turn with as many functionCall
parts of the same names (as the real API checks), else 400 INVALID_ARGUMENT.
Embeddings: 8-dim vectors (or outputDimensionality), the same vector for the same text.
"""

from __future__ import annotations

import json
import math
import os
import re
import zlib
from datetime import UTC, datetime
from typing import Any

DEFAULT_COMPLETION_TOKENS = 8
MAX_COMPLETION_TOKENS = 2000
FUNCTION_CALL_TOKENS = 5
EMBEDDING_DIM = 8
WORDS = [f"w{i}" for i in range(MAX_COMPLETION_TOKENS)]
_CACHED_RE = re.compile(r"cached:(\d+)")
_THINK_RE = re.compile(r"think:(\d+)")


class BadRequest(ValueError):
    """Maps to 400 INVALID_ARGUMENT with this message."""


def google_error(code: int, status: str, message: str, details: list[dict] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return json.dumps({"error": error}).encode()


def _texts(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str)]


def count_prompt(body: dict) -> tuple[int, int, int]:
    """(promptTokenCount, cachedContentTokenCount, thoughtsTokenCount) of a GenerateContentRequest."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified\n")
    sources = [body.get("systemInstruction"), *contents]
    words = len(contents)
    cached = thoughts = 0
    for content in sources:
        if content is None:
            continue
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list) or not content["parts"]:
            raise BadRequest("* GenerateContentRequest.contents.parts: contents.parts must not be empty.\n")
        for part in content["parts"]:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                text = part["text"]
                words += len(text.split())
                cached = cached or int((_CACHED_RE.search(text) or [0, 0])[1])
                thoughts = thoughts or int((_THINK_RE.search(text) or [0, 0])[1])
            else:
                words += 1
    return words, cached, thoughts


def check_function_turns(contents: list[dict]) -> None:
    for i, content in enumerate(contents):
        responses = [p["functionResponse"] for p in content.get("parts", ()) if isinstance(p, dict) and "functionResponse" in p]
        if not responses:
            continue
        previous = contents[i - 1] if i > 0 else {}
        calls = [p["functionCall"] for p in previous.get("parts", ()) if isinstance(p, dict) and "functionCall" in p]
        if previous.get("role") != "model" or sorted(c.get("name") for c in calls) != sorted(r.get("name") for r in responses):
            raise BadRequest(
                "Please ensure that the number of function response parts is equal to the number of function call "
                "parts of the function call turn."
            )
        if not all(isinstance(r.get("response"), dict) for r in responses):
            raise BadRequest("* GenerateContentRequest.contents.parts.function_response.response: must be a JSON object\n")


def wants_function_call(body: dict) -> dict | None:
    """The function to call, when the request declares one and the user asks about the weather."""
    declarations = [d for tool in body.get("tools") or () for d in tool.get("functionDeclarations") or ()]
    last = body["contents"][-1]
    mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode", "AUTO")
    if not declarations or mode == "NONE" or last.get("role", "user") != "user":
        return None
    if any("weather" in t.lower() for t in _texts(last)):
        return declarations[0]
    return None


def generation_length(body: dict) -> tuple[int, str]:
    limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
    if limit is None:
        return DEFAULT_COMPLETION_TOKENS, "STOP"
    if not isinstance(limit, int) or limit < 1:
        raise BadRequest("* GenerateContentRequest.generation_config.max_output_tokens: must be positive\n")
    n = min(limit, MAX_COMPLETION_TOKENS)
    return n, "MAX_TOKENS" if n == limit else "STOP"


class Answer:
    """What the fake generates for one request: per candidate, its parts and finish reason."""

    def __init__(self, body: dict, model: str, vertex: bool) -> None:
        self.model = model
        self.vertex = vertex
        self.response_id = os.urandom(9).hex()
        self.prompt_tokens, self.cached_tokens, self.thoughts_tokens = count_prompt(body)
        check_function_turns(body["contents"])
        count = (body.get("generationConfig") or {}).get("candidateCount") or 1
        function = wants_function_call(body)
        self.function_call = {"name": function["name"], "args": {"location": "Paris"}} if function else None
        if self.function_call:
            self.n, self.finish_reason = 0, "STOP"
            per_candidate = FUNCTION_CALL_TOKENS
        else:
            self.n, self.finish_reason = generation_length(body)
            per_candidate = self.n
        self.candidates = int(count)
        self.candidates_tokens = per_candidate * self.candidates

    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": self.candidates_tokens,
            "totalTokenCount": self.prompt_tokens + self.candidates_tokens + self.thoughts_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}],
        }
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = self.cached_tokens
        if self.thoughts_tokens:
            usage["thoughtsTokenCount"] = self.thoughts_tokens
        if self.vertex:
            usage["trafficType"] = "ON_DEMAND"
        return usage

    def _envelope(self, candidates: list[dict], usage: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {"candidates": candidates}
        if usage:
            doc["usageMetadata"] = self.usage()
        doc["modelVersion"] = self.model
        if self.vertex:
            doc["createTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        doc["responseId"] = self.response_id
        return doc

    def _candidate(self, index: int, parts: list[dict], finish: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish:
            candidate["finishReason"] = self.finish_reason
        candidate["index"] = index
        return candidate

    def whole(self) -> dict[str, Any]:
        parts = [{"functionCall": self.function_call}] if self.function_call else [{"text": " ".join(WORDS[: self.n])}]
        return self._envelope([self._candidate(i, parts, True) for i in range(self.candidates)], True)

    def events(self, stop_after: int | None = None) -> list[dict[str, Any]]:
        """The streamed GenerateContentResponses: one word each, the last with the finishReason and
        the usage; `stop_after` words: the stream a dropped connection leaves behind."""
        if self.function_call:
            parts_list = [[{"functionCall": self.function_call}]]
        else:
            parts_list = [[{"text": WORDS[i] if i == 0 else " " + WORDS[i]}] for i in range(self.n)] or [[{"text": ""}]]
        if stop_after is not None:
            return [
                self._envelope([self._candidate(c, p, False) for c in range(self.candidates)], False)
                for p in parts_list[:stop_after]
            ]
        last = len(parts_list) - 1
        return [
            self._envelope([self._candidate(c, p, i == last) for c in range(self.candidates)], i == last)
            for i, p in enumerate(parts_list)
        ]


def embedding_vector(text: str, dimensions: int | None) -> list[float]:
    seed = zlib.crc32(text.encode())
    return [round(math.sin(seed + k), 6) for k in range(dimensions or EMBEDDING_DIM)]


def batch_embed(body: dict, model: str) -> dict[str, Any]:
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise BadRequest("* BatchEmbedContentsRequest.requests: requests is not specified\n")
    out = []
    for i, item in enumerate(requests):
        if item.get("model") != f"models/{model}":
            raise BadRequest(
                f"Model name in request {i} ({item.get('model')}) does not match the model in the URL (models/{model})."
            )
        out.append({"values": embedding_vector(" ".join(_texts(item.get("content"))), item.get("outputDimensionality"))})
    return {"embeddings": out}


def embed_one(body: dict) -> dict[str, Any]:
    return {"embedding": {"values": embedding_vector(" ".join(_texts(body.get("content"))), body.get("outputDimensionality"))}}


def vertex_predict(body: dict) -> dict[str, Any]:
    instances = body.get("instances")
    if (
        not isinstance(instances, list)
        or not instances
        or not all(isinstance(i, dict) and isinstance(i.get("content"), str) for i in instances)
    ):
        raise BadRequest('Invalid JSON payload received. "instances" must be a list of {"content": string} objects.')
    dimensions = (body.get("parameters") or {}).get("outputDimensionality")
    predictions = [
        {
            "embeddings": {
                "statistics": {"truncated": False, "token_count": len(i["content"].split())},
                "values": embedding_vector(i["content"], dimensions),
            }
        }
        for i in instances
    ]
    characters = sum(len(i["content"].replace(" ", "")) for i in instances)
    return {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}
