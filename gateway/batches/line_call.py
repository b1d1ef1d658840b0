"""One batch line through the edge's one request pipeline (gateway/pipeline.py), as if its caller
had sent it: the same admission (rate limits, budget reservation), the same publish (at batch
priority: workers take it only when no interactive request waits), the same metering (one usage
row: the worker's, or the edge's refusal). The line's ASGI scope names the caller by its key's
token (`BATCH_CALLER`), which no HTTP request can carry, and its `x-request-id` is the line's own
id (`<batch id>-<index>`), so its usage row's `client_request_id` says which line it was."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from gateway.legacy_completions import COMPLETIONS
from gateway.openai_api import CHAT, EMBEDDINGS
from gateway.pipeline import BATCH_CALLER, BATCH_RETRY, Pipeline
from gateway.responses.route import RESPONSES
from gateway.routes import Route

ROUTES: dict[str, Route] = {
    "/v1/chat/completions": CHAT,
    "/v1/embeddings": EMBEDDINGS,
    "/v1/completions": COMPLETIONS,
    "/v1/responses": RESPONSES,
}

_decoder = msgspec.json.Decoder()


class LineAnswer:
    """What the pipeline answered a line: its status, the gateway's request id, its body, cost and tokens."""

    __slots__ = ("body", "cost", "input_tokens", "output_tokens", "request_id", "retry_after", "status")

    def __init__(self, status: int, request_id: str, body: bytes, cost: float) -> None:
        self.retry_after: float | None = None  # refused before a worker had it: send again after this
        self.status = status
        self.request_id = request_id
        self.body = body
        self.cost = cost
        self.input_tokens = 0
        self.output_tokens = 0

    def json_body(self) -> Any:
        try:
            return _decoder.decode(self.body)
        except msgspec.DecodeError:
            return self.body.decode("utf-8", "replace")


def line_request_id(batch_id: str, index: int) -> str:
    return f"{batch_id}-{index}"


async def run_line(pipeline: Pipeline, endpoint: str, body: bytes, caller_token: str, request_id: str) -> LineAnswer:
    """Send one line through the pipeline and collect its whole answer."""
    route = ROUTES[endpoint]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": endpoint,
        "raw_path": endpoint.encode(),
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ],
        "client": None,
        "server": None,
        "state": {},
        BATCH_CALLER: caller_token,
    }
    sent = False
    forever = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await forever.wait()  # the "client" never goes away
        return {"type": "http.disconnect"}

    status = 500
    headers: dict[bytes, bytes] = {}
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.update((k.lower(), v) for k, v in message.get("headers") or ())
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await pipeline.run(scope, receive, send, route)
    gateway_id = headers.get(b"x-litellm-call-id", b"").decode() or request_id
    try:
        cost = float(headers.get(b"x-litellm-response-cost", b"0") or 0)
    except ValueError:
        cost = 0.0
    answer = LineAnswer(status, gateway_id, b"".join(chunks), cost)
    answer.retry_after = scope.get(BATCH_RETRY)
    if status < 400:
        usage = answer.json_body()
        usage = usage.get("usage") if isinstance(usage, dict) else None
        if isinstance(usage, dict):
            answer.input_tokens = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
            answer.output_tokens = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    return answer
