"""Deterministic payloads of the fake OpenAI upstream's other endpoints (see fake_openai.py):
legacy completions, image generations, moderations, and the rerank of OpenAI-compatible servers.

The wire formats follow:
  https://platform.openai.com/docs/api-reference/completions/create   (text_completion, its chunks)
  https://platform.openai.com/docs/api-reference/images/create        (images response; gpt-image usage)
  https://platform.openai.com/docs/api-reference/moderations/create   (moderation results)
  https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html (vLLM's Re-rank API, the
                                                                       Cohere/Jina request shape)

Token accounting (tests compare usage rows against it):
  completions: prompt_tokens = words of every text prompt (or token ids of every token prompt);
      each choice is "w0 ... w{k-1}", k = max_tokens (16 when unset, as the API defaults), capped
      at 2000, finish "length" (k = max_tokens) else "stop"; `n` choices per prompt, index
      prompt * n + choice; completion_tokens = k * max(n, best_of) * prompts; `echo` puts the
      prompt before the text; `logprobs` k gives every token -0.5 with k alternatives.
  images: dall-e models report no usage (a url, or `b64_json` of a 1x1 PNG, per image);
      gpt-image models answer b64_json with usage: input_tokens = prompt words, output_tokens =
      per image 272/1056/4160 (low/medium/high at 1024x1024; `auto` is medium; 1.5 times that
      at 1536x1024 or 1024x1536), and name the size and quality they made.
  moderations: one result per input item, flagged when its text contains "fake-flag"; no usage.
  rerank: score = share of the query's words found in the document; usage.total_tokens = for
      every document, its words + the query's words.
"""

from __future__ import annotations

import base64
import itertools
import os
import time
from typing import Any

from bench.fake_openai_payloads import DONE_EVENT, MAX_COMPLETION_TOKENS, WORDS, BadRequest, encode_json

COMPLETIONS_DEFAULT_TOKENS = 16
PNG_1X1 = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
GPT_IMAGE_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
MODERATION_CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence", "illicit")

_ids = itertools.count(1)
_prefix = os.urandom(4).hex()


def _new_id(kind: str) -> str:
    return f"{kind}-{_prefix}{next(_ids):012x}"


# ---- completions ----------------------------------------------------------------------------------


def _prompts(prompt: Any) -> list[tuple[str, int]]:
    """(text to echo, tokens) of every prompt."""
    if isinstance(prompt, str):
        return [(prompt, len(prompt.split()))]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return [(p, len(p.split())) for p in prompt]
        if all(isinstance(p, int) for p in prompt):
            return [("", len(prompt))]
        if all(isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in prompt):
            return [("", len(p)) for p in prompt]
    raise BadRequest("'prompt' must be a string, an array of strings, or token arrays", "prompt")


def _length(body: dict) -> tuple[int, str]:
    limit = body.get("max_tokens")
    if limit is None:
        limit = COMPLETIONS_DEFAULT_TOKENS
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise BadRequest("max_tokens must be a non-negative integer", "max_tokens")
    k = min(limit, MAX_COMPLETION_TOKENS)
    return k, "length" if k == limit else "stop"


def _logprobs(k: int, alternatives: int) -> dict:
    tokens = [WORDS[i] if i == 0 else " " + WORDS[i] for i in range(k)]
    offsets = list(itertools.accumulate([0, *(len(t) for t in tokens[:-1])])) if tokens else []
    return {
        "tokens": tokens,
        "token_logprobs": [-0.5] * k,
        "top_logprobs": [{t: -0.5, **{f" alt{j}": -2.0 - j for j in range(alternatives - 1)}} for t in tokens],
        "text_offset": offsets,
    }


class CompletionPlan:
    """What a completions request gets: its choices' texts and its usage."""

    def __init__(self, body: dict) -> None:
        self.prompts = _prompts(body.get("prompt"))
        self.k, self.finish = _length(body)
        n, best_of = body.get("n") or 1, body.get("best_of") or 1
        self.n = n
        self.echo = body.get("echo") is True
        self.logprobs = body.get("logprobs")
        prompt_tokens = sum(tokens for _, tokens in self.prompts)
        completion_tokens = self.k * max(n, best_of) * len(self.prompts)
        self.usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def choices(self) -> list[tuple[int, str]]:
        """(index, echoed prompt) of every choice."""
        return [(i * self.n + j, text) for i, (text, _) in enumerate(self.prompts) for j in range(self.n)]

    def text(self, echoed: str) -> str:
        return (echoed if self.echo else "") + " ".join(WORDS[: self.k])


def text_completion(model: str, plan: CompletionPlan) -> bytes:
    choices = [
        {
            "text": plan.text(echoed),
            "index": index,
            "logprobs": _logprobs(plan.k, plan.logprobs) if isinstance(plan.logprobs, int) else None,
            "finish_reason": plan.finish,
        }
        for index, echoed in plan.choices()
    ]
    return encode_json(
        {
            "id": _new_id("cmpl"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": plan.usage,
        }
    )


def text_completion_events(model: str, plan: CompletionPlan, include_usage: bool) -> list[bytes]:
    """The stream's `data:` events: each choice's words in turn, its finish, the usage, [DONE]."""
    base: dict[str, Any] = {"id": _new_id("cmpl"), "object": "text_completion", "created": int(time.time()), "model": model}

    def event(choices: list, usage: dict | None = None) -> bytes:
        chunk = dict(base, choices=choices)
        if include_usage:
            chunk["usage"] = usage
        return b"data: " + encode_json(chunk) + b"\n\n"

    events = []
    for index, echoed in plan.choices():
        pieces = ([echoed] if plan.echo and echoed else []) + [WORDS[i] if i == 0 else " " + WORDS[i] for i in range(plan.k)]
        events += [event([{"text": p, "index": index, "logprobs": None, "finish_reason": None}]) for p in pieces]
        events.append(event([{"text": "", "index": index, "logprobs": None, "finish_reason": plan.finish}]))
    if include_usage:
        events.append(event([], plan.usage))
    return [*events, DONE_EVENT]


# ---- images -------------------------------------------------------------------------------------


def images(body: dict) -> bytes:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("'prompt' is required", "prompt")
    n = body.get("n") or 1
    if not isinstance(n, int) or not 1 <= n <= 10:
        raise BadRequest("'n' must be between 1 and 10", "n")
    model = str(body.get("model") or "dall-e-2")
    created = int(time.time())
    if model.startswith("gpt-image"):
        quality = body.get("quality") if body.get("quality") in GPT_IMAGE_TOKENS else "medium"
        size = body.get("size") if body.get("size") in ("1024x1024", "1536x1024", "1024x1536") else "1024x1024"
        each = GPT_IMAGE_TOKENS[quality] * (1 if size == "1024x1024" else 3) // (1 if size == "1024x1024" else 2)
        words = len(prompt.split())
        return encode_json(
            {
                "created": created,
                "data": [{"b64_json": base64.b64encode(PNG_1X1).decode()} for _ in range(n)],
                "size": size,
                "quality": quality,
                "background": "opaque",
                "output_format": "png",
                "usage": {
                    "input_tokens": words,
                    "output_tokens": each * n,
                    "total_tokens": words + each * n,
                    "input_tokens_details": {"text_tokens": words, "image_tokens": 0},
                },
            }
        )
    if body.get("response_format") == "b64_json":
        data = [{"b64_json": base64.b64encode(PNG_1X1).decode(), "revised_prompt": prompt} for _ in range(n)]
    else:
        data = [{"url": f"https://images.fake-openai.invalid/{_new_id('img')}.png", "revised_prompt": prompt} for _ in range(n)]
    return encode_json({"created": created, "data": data})


# ---- moderations --------------------------------------------------------------------------------


def _moderation_items(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and item.get("type") in ("text", "image_url"):
                out.append(item.get("text") or "")
            else:
                raise BadRequest("each input item must be a string or a text or image_url part", "input")
        return out
    raise BadRequest("'input' must be a string or a non-empty array", "input")


def moderations(body: dict) -> bytes:
    results = []
    for text in _moderation_items(body.get("input")):
        flagged = "fake-flag" in text
        results.append(
            {
                "flagged": flagged,
                "categories": {c: flagged and c == "violence" for c in MODERATION_CATEGORIES},
                "category_scores": {c: 0.9 if flagged and c == "violence" else 0.001 for c in MODERATION_CATEGORIES},
                "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
            }
        )
    return encode_json({"id": _new_id("modr"), "model": body.get("model") or "omni-moderation-latest", "results": results})


# ---- rerank -------------------------------------------------------------------------------------


def relevance(query: str, document: str) -> float:
    """The share of the query's words found in the document (case-insensitive)."""
    words = query.lower().split()
    found = set(document.lower().split())
    return round(sum(w in found for w in words) / len(words), 6) if words else 0.0


def rerank_documents(body: dict) -> tuple[str, list[str]]:
    query, documents = body.get("query"), body.get("documents")
    if not isinstance(query, str) or not query:
        raise BadRequest("'query' is required", "query")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        raise BadRequest("'documents' must be a non-empty list of strings", "documents")
    return query, documents


def rerank(body: dict) -> bytes:
    """vLLM's /rerank answer (the Jina / Cohere shape with `usage.total_tokens`)."""
    query, documents = rerank_documents(body)
    scored = sorted(
        ({"index": i, "document": {"text": d}, "relevance_score": relevance(query, d)} for i, d in enumerate(documents)),
        key=lambda r: -r["relevance_score"],
    )
    top_n = body.get("top_n")
    if isinstance(top_n, int) and top_n > 0:
        scored = scored[:top_n]
    tokens = sum(len(d.split()) + len(query.split()) for d in documents)
    return encode_json(
        {"id": _new_id("rerank"), "model": body.get("model"), "usage": {"total_tokens": tokens}, "results": scored}
    )
