"""OpenAI's Responses API forwarded to a deployment that speaks it (`Operation.RESPONSES`).

Reference: https://platform.openai.com/docs/api-reference/responses/create and
https://platform.openai.com/docs/api-reference/responses-streaming (the `usage` of the response
object: `input_tokens`, `input_tokens_details.cached_tokens`, `output_tokens`,
`output_tokens_details.reasoning_tokens`; a stream carries it in `response.completed`).

The edge has already put the stored conversation before the input and set `store: false`; here
the body gets the upstream's model name, loses the gateway's own fields, gets the policy's system
prompts as the first input items and, for a request its budget caps, a `max_output_tokens` it can
pay for. The answer is relayed as the upstream sent it (a whole JSON body, or its event stream as
it comes) and metered from its usage. An error status is the upstream error policy's, so it is
retried and routed around like any other; a stream that ends before its last event is a 502,
with the tokens it used so far estimated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, UpstreamRequest
from llmgw.prices import price_for
from llmgw.tokens import count_tokens
from workers.budget_cap import completion_allowance, prompt_bytes_of
from workers.http_client import UpstreamClient
from workers.providers.answers import NativeHead, NativeItem, NativeUsage, StreamProgress
from workers.providers.errors import ErrorReader, UpstreamError, invalid_answer
from workers.providers.native import kept_headers
from workers.providers.request_body import RequestBody, drop_metadata_tags, json_value
from workers.providers.sse import SseData
from workers.usage import Usage, estimate_tokens

_encoder = msgspec.json.Encoder()
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_TERMINAL_MARKERS = (b"response.completed", b"response.incomplete", b"response.failed")
MIN_OUTPUT_TOKENS = 16  # the least `max_output_tokens` the Responses API accepts


class ResponsesTarget(Protocol):
    """What `forward_responses` asks of an adapter (the OpenAI family has it)."""

    client: UpstreamClient

    def responses_url(self, deployment: Deployment, upstream_model: str) -> str: ...

    def endpoint_request(
        self, deployment: Deployment, request: UpstreamRequest, key: tuple[str, ...], url: Callable[[], str], body: bytes
    ) -> httpx.Request: ...

    def open_stream(
        self, upstream: httpx.Request, deployment: Deployment, to_error: ErrorReader
    ) -> AbstractAsyncContextManager[httpx.Response]: ...

    def native_usage(self) -> NativeUsage | None: ...


class _EventProbe(msgspec.Struct):
    type: str = ""
    delta: Any = None


_probe_decoder = msgspec.json.Decoder(_EventProbe)


def _with_system_prompts(value: Any, system_prompts: list[str]) -> list[Any]:
    items = [{"role": "system", "content": p} for p in system_prompts]
    if isinstance(value, str):
        return [*items, {"role": "user", "content": value}]
    return [*items, *(value if isinstance(value, list) else [])]


def responses_body(
    body: RequestBody, upstream_model: str, system_prompts: list[str], gateway_only: frozenset[str], cap: int | None
) -> bytes:
    """The client's Responses body as the upstream gets it (see the module docstring)."""
    data = dict(body.fields())
    data["model"] = upstream_model
    for name in gateway_only.intersection(data):
        del data[name]
    if "metadata" in data:
        drop_metadata_tags(data)
    if system_prompts:
        data["input"] = _with_system_prompts(json_value(data.get("input")), system_prompts)
    if cap is not None:
        asked = json_value(data["max_output_tokens"]) if "max_output_tokens" in data else None
        data["max_output_tokens"] = min(asked, cap) if isinstance(asked, int) and asked > 0 else cap
    return _encoder.encode(data)


def output_cap(request: UpstreamRequest, deployment: Deployment, upstream_model: str) -> int | None:
    """The output tokens a capped request can pay for (None: not capped, or no price known); a
    budget that cannot pay for the API's minimum answer stops the request before it is sent."""
    if request.cost_cap is None:
        return None
    price = price_for(deployment, upstream_model)
    if price is None:
        return None
    allowance = completion_allowance(price, request.cost_cap, prompt_bytes_of(request))
    if allowance >= MIN_OUTPUT_TOKENS:
        return allowance
    # Short by the bound (a token a byte): the smallest answer goes out when the prompt's tokens,
    # as the tokenizer counts them, leave room for it; otherwise the request is stopped unsent.
    prompt = request.body.decode(errors="replace") + "".join(request.system_prompts)
    if completion_allowance(price, request.cost_cap, count_tokens(prompt, upstream_model)) < MIN_OUTPUT_TOKENS:
        raise UpstreamError(
            429,
            f"the budget of this key, user or team cannot pay for the smallest answer ({MIN_OUTPUT_TOKENS} output tokens)",
            "budget_exceeded",
            ErrorCode.BUDGET_EXCEEDED,
        )
    return MIN_OUTPUT_TOKENS


class _StreamWatch:
    """What a relayed stream said so far: whether its last event came, the text it streamed."""

    __slots__ = ("ended", "progress")

    def __init__(self, progress: StreamProgress) -> None:
        self.ended = False
        self.progress = progress

    @property
    def streamed_chars(self) -> int:
        return self.progress.completion_chars

    def event(self, data: bytes) -> None:
        if not (b'"delta"' in data or any(m in data for m in _TERMINAL_MARKERS)):
            return
        try:
            probe = _probe_decoder.decode(data)
        except msgspec.DecodeError:
            return
        if probe.type in TERMINAL_EVENTS:
            self.ended = True
        elif isinstance(probe.delta, str):
            self.progress.completion_chars += len(probe.delta)


async def forward_responses(
    target: ResponsesTarget,
    deployment: Deployment,
    request: UpstreamRequest,
    upstream_model: str,
    body: RequestBody,
    gateway_only: frozenset[str],
    to_error: ErrorReader,
) -> AsyncIterator[NativeItem]:
    sent = responses_body(
        body, upstream_model, request.system_prompts, gateway_only, output_cap(request, deployment, upstream_model)
    )
    upstream = target.endpoint_request(
        deployment,
        request,
        (deployment.id, "responses", upstream_model),
        lambda: target.responses_url(deployment, upstream_model),
        sent,
    )
    usage = target.native_usage()
    async with target.open_stream(upstream, deployment, to_error) as resp:
        streaming = resp.headers.get("content-type", "").startswith("text/event-stream")
        yield NativeHead(resp.status_code, kept_headers(resp.headers), streaming)
        if not streaming:
            content = await target.client.read(resp)
            if usage is not None:
                usage.body(content)
            yield content
        else:
            progress = StreamProgress(len(sent))
            yield progress  # (what it used so far, should the call be cancelled)
            parser, watch = SseData(), _StreamWatch(progress)
            broken: httpx.HTTPError | None = None
            try:
                async for chunk in target.client.chunks(resp):
                    for data in parser.feed(chunk):
                        watch.event(data)
                        if usage is not None:
                            usage.event(data)
                    yield chunk
            except httpx.HTTPError as exc:
                broken = exc
            if not watch.ended:
                if usage is None or usage.usage is None:  # what it used so far, estimated
                    yield Usage(
                        prompt_tokens=estimate_tokens(len(sent)),
                        completion_tokens=estimate_tokens(watch.streamed_chars),
                        estimated=True,
                    )
                if broken is not None:
                    raise broken  # (a transport failure: `open_stream` makes it the client's 502)
                raise invalid_answer("the upstream ended the stream before its last event")
    if usage is not None and usage.usage is not None:
        yield usage.usage
