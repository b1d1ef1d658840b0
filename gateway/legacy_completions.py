"""`POST /v1/completions`: OpenAI's legacy text completions, whole or streamed.

Reference: https://platform.openai.com/docs/api-reference/completions/create. The edge checks the
body and reserves its worst case: every prompt of a list gets its own `n` (or `best_of`)
answers of up to `max_tokens` (16 when unset, as the API defaults). The worker forwards the call
to deployments that serve `/completions` and translates it to chat (and back) for the others
(workers/providers/completions_chat.py), so answers reach the edge as `text_completion` JSON and
chunks either way.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.handlers import asgi

from gateway.asgi_io import Receive, Scope, Send
from gateway.edge import Edge
from gateway.errors import GatewayError
from gateway.limits_policy import apply_max_tokens
from gateway.openai_api import OPENAI_STREAM, OpenAIStream, openai_paths
from gateway.pipeline import pipeline_of
from gateway.routes import Call, Incoming, Route
from gateway.schemas import StreamOptions, decoded
from llmgw.contracts import ErrorCode, ErrorType, Operation

DEFAULT_MAX_TOKENS = 16  # the API's default completion length

Prompt = str | list[str | int | list[int]]  # a text, texts, token ids, or lists of token ids


class CompletionRequest(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    prompt: Prompt
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    best_of: Annotated[int, msgspec.Meta(ge=1, le=20)] | None = None
    echo: bool | None = None
    suffix: str | None = None
    logprobs: Annotated[int, msgspec.Meta(ge=0, le=5)] | None = None
    stop: str | list[str] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    presence_penalty: Annotated[float, msgspec.Meta(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, msgspec.Meta(ge=-2, le=2)] | None = None
    seed: int | None = None
    user: str | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None  # seconds (the gateway's; not sent upstream)


_decoder = msgspec.json.Decoder(CompletionRequest)


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError(400, f"Invalid request: {message}", ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def prompt_count(prompt: Prompt) -> int:
    """How many prompts the request holds (each gets its own answers); 400 for an empty or mixed list."""
    if isinstance(prompt, str):
        return 1
    if not prompt:
        raise _bad("`prompt` must not be an empty list", "prompt")
    if all(isinstance(p, str) for p in prompt):
        return len(prompt)
    if all(isinstance(p, int) for p in prompt):
        return 1  # one prompt as token ids
    if all(isinstance(p, list) and p for p in prompt):
        return len(prompt)
    raise _bad("`prompt` must be a string, a list of strings, a list of token ids or a list of such lists", "prompt")


def parse_completion(body: bytes) -> CompletionRequest:
    request = decoded(_decoder, body)
    prompt_count(request.prompt)
    if request.best_of is not None and request.best_of < (request.n or 1):
        raise _bad("`best_of` must be greater than or equal to `n`", "best_of")
    return request


class CompletionsRoute(Route):
    operation = Operation.COMPLETIONS

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        parsed = parse_completion(body)
        body = apply_max_tokens(body, parsed, edge.settings)
        stream = bool(parsed.stream)
        answers = max(parsed.n or 1, parsed.best_of or 1)
        limit = DEFAULT_MAX_TOKENS if parsed.max_tokens is None else parsed.max_tokens
        return Call(
            parsed.model,
            body,
            stream=stream,
            include_usage=bool(stream and parsed.stream_options and parsed.stream_options.include_usage),
            max_tokens=max(limit, 1),
            n=prompt_count(parsed.prompt) * answers,
            timeout=parsed.timeout,
        )

    def stream(self, call: Call, request_id: str) -> OpenAIStream:
        return OPENAI_STREAM


COMPLETIONS = CompletionsRoute()


@asgi(openai_paths("completions"), copy_scope=False)
async def completions(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, COMPLETIONS)


ROUTES = [completions]
