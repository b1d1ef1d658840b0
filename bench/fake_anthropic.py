"""Fake Anthropic Messages API upstream for llmgw's tests and benchmarks.

The wire format follows Anthropic's public API reference:
  https://docs.anthropic.com/en/api/messages            (request fields, the Message object, usage)
  https://docs.anthropic.com/en/api/messages-streaming  (SSE events: message_start, content_block_start,
                                                         content_block_delta, content_block_stop,
                                                         message_delta, message_stop, ping, error)
  https://docs.anthropic.com/en/api/errors              ({"type": "error", "error": {"type", "message"}})
  https://docs.anthropic.com/en/api/versioning          (the required `anthropic-version` header)
  https://docs.anthropic.com/en/api/messages-count-tokens
Like the real API it wants `x-api-key` (or `Authorization: Bearer`, as the official Python SDK
2.x sends the key; 401 authentication_error otherwise) and `anthropic-version`
(400 without it), and refuses requests Anthropic refuses: unknown top-level fields, roles other
than user, assistant and system (the newer system message between turns, text only, which takes
no part in the alternation) in `messages`, two turns of one role in a row, empty text blocks, tool_result blocks
that answer no tool_use of the turn before (or come after text), tool_use left unanswered.

Endpoints: POST /v1/messages, the Message Batches API (POST /v1/messages/batches, GET
/v1/messages/batches/{id} and its results_url: fake_anthropic_batches.py; its delay: POST
/_fake/batch_delay {"seconds": x}), POST /v1/messages/count_tokens (the body of a Messages request without
`max_tokens`, checked alike; answers {"input_tokens": W}, W below); GET /_fake/stats -> {"requests",
"by_model", "auth_failures", "last_request", "last_headers", "counted"}; POST /_fake/reset.

Token accounting (tests compare usage rows against it):
  W (all prompt tokens) = words of the system texts and of every text / tool_result text in the
                          messages + the number of messages
  cache_read_input_tokens     = K when a text contains "cached:K" (at most W)
  cache_creation_input_tokens = words of the text blocks (system or message) carrying cache_control
  input_tokens                = W - cache reads - cache writes
  reply: "w0 w1 ... w{n-1}", n = min(max_tokens, 8), stop_reason max_tokens when max_tokens < 8,
         else end_turn; a stop sequence equal to a word ends the reply before it (stop_sequence).
  tool use: when `tools` are given and the last user turn's text contains "weather", the reply is
         the text "Let me check." and a tool_use of the first tool with input
         {"location": "Paris", "unit": "celsius"} (streamed as input_json_delta fragments);
         output_tokens = 3 + 10, stop_reason tool_use.
Faults by model name: fake-error-{400,401,403,404,429,500} and fake-overloaded (529
overloaded_error) answer that error; fake-slow-<ms> waits first; fake-hang never answers;
fake-stream-fail streams three words then drops the connection; fake-stream-overloaded streams
two words then sends an `error` event (overloaded_error).

CLI:  python -m bench.fake_anthropic --host 127.0.0.1 --port 0 [--api-key KEY]  (prints "READY <port>")
Code: handle, port = await start_fake(api_key="sk-ant-x"); ...; await handle.stop()
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bench.fake_anthropic_batches import FakeMessageBatches
from bench.fake_anthropic_payloads import Invalid, Reply, check_request, count_usage, message_json, new_id, plan_reply, sse
from bench.fake_http import DropConnection, FakeServerHandle, Request, Response, StreamResponse, fake_cli, start_app, suffix_ms
from bench.fake_openai_payloads import decode_json, encode_json

JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
STREAM_FAIL_AFTER_WORDS = 3

# model name -> (HTTP status, error type, message, extra headers)
FAULTS: dict[str, tuple[int, str, str, dict[str, str]]] = {
    "fake-error-400": (400, "invalid_request_error", "messages: fake bad request", {}),
    "fake-error-401": (401, "authentication_error", "invalid x-api-key", {}),
    "fake-error-403": (403, "permission_error", "Your API key does not have permission to use the specified resource.", {}),
    "fake-error-404": (404, "not_found_error", "model: fake-error-404", {}),
    "fake-error-429": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
        {"retry-after": "1"},
    ),
    "fake-error-500": (500, "api_error", "Internal server error", {}),
    "fake-overloaded": (529, "overloaded_error", "Overloaded", {}),
}


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = encode_json({"type": "error", "error": {"type": kind, "message": message}, "request_id": new_id("req")})
    return Response(status, body, {**JSON_HEADERS, **(headers or {})})


async def stream_events(model: str, reply: Reply, usage: dict, delay_s: float) -> AsyncIterator[bytes]:
    fail = model == "fake-stream-fail"
    overloaded = model == "fake-stream-overloaded"
    yield sse("message_start", {"type": "message_start", "message": message_json(model, reply, usage, [], stop=False)})
    yield sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    yield sse("ping", {"type": "ping"})
    cut = STREAM_FAIL_AFTER_WORDS if fail else 2 if overloaded else len(reply.words)
    for i, word in enumerate(reply.words[:cut]):
        if delay_s:
            await asyncio.sleep(delay_s)
        delta = {"type": "text_delta", "text": word if i == 0 else " " + word}
        yield sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
    if fail:
        raise DropConnection  # no message_delta, no message_stop, no end of the chunked body
    if overloaded:
        yield sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        return
    yield sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    if reply.tool:
        start = {**reply.tool, "input": {}}
        yield sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": start})
        raw = encode_json(reply.tool["input"]).decode()
        for piece in ("", raw[:10], raw[10:25], raw[25:]):
            delta = {"type": "input_json_delta", "partial_json": piece}
            yield sse("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": delta})
        yield sse("content_block_stop", {"type": "content_block_stop", "index": 1})
    yield sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
            "usage": {"output_tokens": reply.output_tokens},
        },
    )
    yield sse("message_stop", {"type": "message_stop"})


@dataclass
class FakeStats:
    requests: int = 0
    by_model: dict[str, int] = field(default_factory=dict)
    auth_failures: int = 0
    last_request: dict | None = None
    last_headers: dict[str, str] = field(default_factory=dict)
    counted: int = 0  # count_tokens calls answered

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "by_model": dict(self.by_model),
            "auth_failures": self.auth_failures,
            "last_request": self.last_request,
            "last_headers": dict(self.last_headers),
            "counted": self.counted,
        }

    def reset(self) -> None:
        self.__init__()


class FakeAnthropic:
    """The request handler: routing, auth, validation, faults and answers."""

    def __init__(self, api_key: str | None = None, chunk_delay_ms: float = 0) -> None:
        self.api_key = api_key
        self.chunk_delay_s = chunk_delay_ms / 1000
        self.stats = FakeStats()
        self.batches = FakeMessageBatches(FAULTS)

    async def handle(self, request: Request) -> Response | StreamResponse:
        if request.method == "POST" and request.path in ("/v1/messages", "/v1/messages/count_tokens"):
            return await self._api_call(request)
        if request.path.startswith("/v1/messages/batches"):
            return self._batches(request)
        if request.path == "/_fake/batch_delay" and request.method == "POST":
            self.batches.delay = float(decode_json(request.body)["seconds"])
            return Response(200, b'{"ok":true}', JSON_HEADERS)
        if request.path == "/_fake/stats" and request.method == "GET":
            return Response(200, encode_json({**self.stats.as_dict(), **self.batches.stats()}), JSON_HEADERS)
        if request.path == "/_fake/reset" and request.method == "POST":
            self.stats.reset()
            self.batches.reset()
            return Response(200, b'{"ok":true}', JSON_HEADERS)
        return error_response(404, "not_found_error", f"Not Found: {request.method} {request.path}")

    def _refusal(self, request: Request) -> Response | None:
        """401 without the key, 400 without anthropic-version."""
        key = request.headers.get("x-api-key")
        bearer = request.headers.get("authorization", "")
        if key is None and bearer.startswith("Bearer "):
            key = bearer[7:]  # (the official Python SDK 2.x sends an API key this way)
        if self.api_key and key != self.api_key:
            self.stats.auth_failures += 1
            return error_response(401, "authentication_error", "x-api-key header is required" if not key else "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error_response(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    def _batches(self, request: Request) -> Response:
        """The Message Batches API (fake_anthropic_batches.py)."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        parts = request.path.strip("/").split("/")[3:]  # after v1/messages/batches
        if request.method == "POST" and not parts:
            try:
                status, body = self.batches.create(decode_json(request.body))
            except ValueError:
                return error_response(400, "invalid_request_error", "There was an error parsing the body of your request.")
        elif request.method == "GET" and len(parts) == 1:
            status, body = self.batches.retrieve(parts[0], f"http://{request.headers.get('host', '127.0.0.1')}")
        elif request.method == "POST" and len(parts) == 2 and parts[1] == "cancel":
            status, body = self.batches.cancel(parts[0], f"http://{request.headers.get('host', '127.0.0.1')}")
        elif request.method == "GET" and len(parts) == 2 and parts[1] == "results":
            status, data = self.batches.results(parts[0])
            if status == 200:
                return Response(200, data, {"Content-Type": "application/binary"})
            return error_response(404, "not_found_error", f"Results of {parts[0]} not found")
        else:
            return error_response(404, "not_found_error", f"Not Found: {request.method} {request.path}")
        if status >= 400:
            return error_response(status, body["type"], body["message"])
        return Response(200, encode_json(body), JSON_HEADERS)

    async def _api_call(self, request: Request) -> Response | StreamResponse:
        self.stats.requests += 1
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            body = decode_json(request.body)
        except ValueError:
            return error_response(400, "invalid_request_error", "There was an error parsing the body of your request.")
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            return error_response(400, "invalid_request_error", "model: Field required")
        self.stats.by_model[model] = self.stats.by_model.get(model, 0) + 1
        self.stats.last_request = body
        self.stats.last_headers = {k: v for k, v in request.headers.items() if k.startswith("anthropic-")}
        fault = FAULTS.get(model)
        if fault is not None:
            status, kind, message, headers = fault
            return error_response(status, kind, message, headers)
        if model == "fake-hang":
            await asyncio.Future()  # cancelled when the client disconnects
        delay_ms = suffix_ms(model, "fake-slow-")
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        counting = request.path.endswith("/count_tokens")
        try:
            body = check_request({**body, "max_tokens": 1} if counting else body)
        except Invalid as exc:
            return error_response(400, "invalid_request_error", str(exc))
        usage = count_usage(body)
        if counting:
            self.stats.counted += 1
            return Response(200, encode_json({"input_tokens": sum(usage.values())}), JSON_HEADERS)
        reply = plan_reply(body)
        headers = {"request-id": new_id("req")}
        if body.get("stream"):
            return StreamResponse(stream_events(model, reply, usage, self.chunk_delay_s), headers={**SSE_HEADERS, **headers})
        return Response(200, encode_json(message_json(model, reply, usage)), {**JSON_HEADERS, **headers})


async def start_fake(
    host: str = "127.0.0.1", port: int = 0, api_key: str | None = None, chunk_delay_ms: float = 0
) -> tuple[FakeServerHandle, int]:
    """Start the fake upstream on the running loop; returns (handle, actual port). `base_url` is
    the API root (Anthropic's paths start with /v1)."""
    return await start_app(FakeAnthropic(api_key=api_key, chunk_delay_ms=chunk_delay_ms), host, port)


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunk-delay-ms", type=float, default=0, help="delay between streamed words")


def main(argv: list[str] | None = None) -> None:
    fake_cli(
        "python -m bench.fake_anthropic",
        __doc__,
        lambda a: start_fake(a.host, a.port, a.api_key, a.chunk_delay_ms),
        argv,
        "require 'x-api-key: <key>'",
        _flags,
    )


if __name__ == "__main__":
    sys.exit(main())
