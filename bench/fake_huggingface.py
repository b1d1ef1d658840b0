"""Fake HuggingFace serverless Inference API upstream (task routes) for llmgw's tests and benchmarks.

The wire format follows the public references:
  https://huggingface.co/docs/inference-providers/tasks/text-generation   (POST /models/{model},
      `{"inputs", "parameters", "stream"}`)
  https://huggingface.co/docs/inference-providers/tasks/feature-extraction (POST /models/{model},
      `{"inputs": [...]}` -> nested float lists)
  text-generation-inference's generate / generate_stream (docs/openapi.json): a whole answer is
      `[{"generated_text", "details": {"finish_reason", "generated_tokens", "seed", "prefill",
      "tokens"}}]`, a stream is SSE `data: {"index", "token": {"id", "text", "logprob", "special"},
      "top_tokens", "generated_text", "details"}` whose last event carries generated_text and
      details {"finish_reason", "generated_tokens", "seed", "input_length"}; errors are
      `{"error", "error_type"}` (422 for input validation), a model still loading answers 503
      `{"error": "Model ... is currently loading", "estimated_time"}`, a wrong token 401
      `{"error": "Invalid credentials in Authorization header"}`.
Credential: `Authorization: Bearer <token>`.
Which task: a string `inputs` is text generation, an array of strings feature extraction (the real
API picks the task from the model; the fake serves both on every model name).

Token accounting (tests compare usage rows against it):
  prompt tokens     = whitespace-separated words of `inputs`; listed one per word in `prefill` only
                      when parameters.decoder_input_details is true (as TGI does), reported as a
                      stream's details.input_length
  generated_tokens  = n words "w0 w1 ... w{n-1}", n = max_new_tokens (finish "length") or 8 and then
                      the special end-of-sequence token "</s>" (finish "eos_token", n + 1 tokens)
  feature extraction: one 8-dim vector per input; model `fake-unpooled` answers one vector per word
Validation like TGI's: temperature must be > 0, top_p < 1, decoder_input_details not with stream.

Faults by model name: fake-error-{400,401,429,500}, fake-loading (503 with estimated_time 20),
fake-slow-<ms>, fake-stream-fail (three tokens, then the connection drops). GET /_fake/stats ->
{"requests", "by_model", "auth_failures", "last_request"}; POST /_fake/reset.

CLI:  python -m bench.fake_huggingface --host 127.0.0.1 --port 0 [--api-key KEY]  (prints "READY <port>")
Code: handle, port = await start_fake(api_key="hf_x"); ...; await handle.stop()
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from bench.fake_http import DropConnection, FakeServerHandle, Request, Response, StreamResponse, fake_cli, start_app, suffix_ms
from bench.fake_openai_payloads import DEFAULT_COMPLETION_TOKENS, WORDS, embedding_vector
from bench.fake_openai_stats import FakeStats

JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
STREAM_FAIL_AFTER_TOKENS = 3
EOS = "</s>"

FAULTS: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = {
    "fake-error-400": (400, {"error": "Input validation error: fake bad request", "error_type": "validation"}, {}),
    "fake-error-401": (401, {"error": "Invalid credentials in Authorization header"}, {}),
    "fake-error-429": (429, {"error": "Rate limit reached. Please log in or use a HF access token"}, {"retry-after": "1"}),
    "fake-error-500": (500, {"error": "Request failed during generation: fake failure", "error_type": "generation"}, {}),
    "fake-loading": (503, {"error": "Model fake-loading is currently loading", "estimated_time": 20.0}, {}),
}


def _json(status: int, doc: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(doc).encode(), {**JSON_HEADERS, **(headers or {})})


def _invalid(message: str) -> Response:
    return _json(422, {"error": f"Input validation error: {message}", "error_type": "validation"})


def _token(i: int, text: str, special: bool = False) -> dict[str, Any]:
    return {"id": 1000 + i, "text": text, "logprob": -0.5, "special": special}


def generation(inputs: str, parameters: dict[str, Any]) -> tuple[list[dict[str, Any]], str, int]:
    """(generated tokens, finish_reason, prompt tokens)."""
    limit = parameters.get("max_new_tokens")
    n = DEFAULT_COMPLETION_TOKENS if limit is None else min(int(limit), len(WORDS))
    tokens = [_token(i, WORDS[i] if i == 0 else " " + WORDS[i]) for i in range(n)]
    if limit is None:
        tokens.append(_token(n, EOS, special=True))
    return tokens, "eos_token" if limit is None else "length", len(inputs.split())


class FakeHuggingFace:
    """The request handler: routing, auth, faults and responses."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.stats = FakeStats()
        self.last_request: dict[str, Any] | None = None

    async def handle(self, request: Request) -> Response | StreamResponse:
        if request.method == "POST" and request.path.startswith("/models/"):
            return await self._api_call(request, request.path[len("/models/") :])
        if request.path == "/_fake/stats" and request.method == "GET":
            return _json(200, {**self.stats.as_dict(), "last_request": self.last_request})
        if request.path == "/_fake/reset" and request.method == "POST":
            self.stats.reset()
            return _json(200, {"ok": True})
        return _json(404, {"error": "Not Found"})

    async def _api_call(self, request: Request, model: str) -> Response | StreamResponse:
        self.stats.requests += 1
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            self.stats.auth_failures += 1
            return _json(401, {"error": "Invalid credentials in Authorization header"})
        try:
            body = json.loads(request.body)
        except ValueError:
            return _json(400, {"error": "Failed to deserialize the JSON body into the target type"})
        if not isinstance(body, dict) or "inputs" not in body:
            return _json(400, {"error": "Failed to deserialize the JSON body into the target type: missing field `inputs`"})
        self.last_request = body
        self.stats.by_model[model] = self.stats.by_model.get(model, 0) + 1
        if model in FAULTS:
            status, doc, headers = FAULTS[model]
            return _json(status, doc, headers)
        if delay := suffix_ms(model, "fake-slow-"):
            await asyncio.sleep(delay / 1000)
        inputs = body["inputs"]
        if isinstance(inputs, list) and inputs and all(isinstance(t, str) for t in inputs):
            return self._features(model, inputs)
        if not isinstance(inputs, str):
            return _json(
                400, {"error": "`inputs` must be a string (text generation) or an array of strings (feature extraction)"}
            )
        return self._generate(model, inputs, body.get("parameters") or {}, bool(body.get("stream")))

    def _features(self, model: str, texts: list[str]) -> Response:
        if model == "fake-unpooled":
            return _json(200, [[embedding_vector(w.encode()) for w in t.split() or [""]] for t in texts])
        return _json(200, [embedding_vector(t.encode()) for t in texts])

    def _generate(self, model: str, inputs: str, parameters: dict[str, Any], stream: bool) -> Response | StreamResponse:
        temperature, top_p = parameters.get("temperature"), parameters.get("top_p")
        if temperature is not None and temperature <= 0:
            return _invalid("`temperature` must be strictly positive")
        if top_p is not None and not 0 < top_p < 1:
            return _invalid("`top_p` must be > 0.0 and < 1.0")
        if stream and parameters.get("decoder_input_details"):
            return _invalid("`decoder_input_details` == true is not supported when streaming tokens")
        tokens, finish, prompt_tokens = generation(inputs, parameters)
        text = "".join(t["text"] for t in tokens if not t["special"])
        if stream:
            return StreamResponse(self._events(model, tokens, text, finish, prompt_tokens), headers=SSE_HEADERS)
        details: dict[str, Any] = {
            "finish_reason": finish,
            "generated_tokens": len(tokens),
            "seed": None,
            "prefill": [],
            "tokens": tokens,
        }
        if parameters.get("decoder_input_details"):
            details["prefill"] = [
                {"id": 2000 + i, "text": w, "logprob": None if i == 0 else -1.0} for i, w in enumerate(inputs.split())
            ]
        answer: dict[str, Any] = {"generated_text": text}
        if parameters.get("details"):
            answer["details"] = details
        return _json(200, [answer])

    async def _events(self, model: str, tokens: list[dict[str, Any]], text: str, finish: str, prompt_tokens: int):
        fail = model == "fake-stream-fail"
        for i, token in enumerate(tokens[:STREAM_FAIL_AFTER_TOKENS] if fail else tokens):
            await asyncio.sleep(0)
            last = i == len(tokens) - 1 and not fail
            event = {
                "index": i + 1,
                "token": token,
                "top_tokens": None,
                "generated_text": text if last else None,
                "details": {"finish_reason": finish, "generated_tokens": len(tokens), "seed": None, "input_length": prompt_tokens}
                if last
                else None,
            }
            yield b"data:" + json.dumps(event).encode() + b"\n\n"
        if fail:
            raise DropConnection


async def start_fake(host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> tuple[FakeServerHandle, int]:
    """Start the fake upstream on the running loop; returns (handle, actual port)."""
    return await start_app(FakeHuggingFace(api_key), host, port)


def main(argv: list[str] | None = None) -> None:
    fake_cli(
        "python -m bench.fake_huggingface",
        __doc__,
        lambda a: start_fake(a.host, a.port, a.api_key),
        argv,
        "require 'Authorization: Bearer <key>'",
    )


if __name__ == "__main__":
    sys.exit(main())
