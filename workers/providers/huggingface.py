"""HuggingFace's serverless Inference API task routes, for models without an OpenAI route.

Text generation: POST {api_base}/models/{model} with `{"inputs": <prompt>, "parameters": {...},
"stream": bool}` (https://huggingface.co/docs/inference-providers/tasks/text-generation; the wire
format is text-generation-inference's generate / generate_stream: a whole answer is
`[{"generated_text", "details": {"finish_reason", "generated_tokens", "prefill": [...]}}]` or that
object alone, a stream is SSE `data: {"token": {...}, "generated_text": null|"...", "details":
null|{..., "input_length"}}` whose last event carries `details`). Embeddings: feature extraction,
POST {api_base}/models/{model} with `{"inputs": [...]}` answering nested float lists
(https://huggingface.co/docs/inference-providers/tasks/feature-extraction). Bearer auth. A model
still loading answers 503 `{"error", "estimated_time"}`: the client gets 503 with retry_after.

The chat messages become one prompt (`render_prompt`), one line per message:
    System: <policy prompt>          (the policy's system prompts come first)
    System: <client system message>
    User: <text>
    Assistant: <text>
    Tool: <tool result>
    Assistant:                       (the model continues from here)
This is a plain template, not the model's own chat template, which the task route does not apply.

Usage: completion tokens are `details.generated_tokens`. Prompt tokens are `len(details.prefill)`
(asked for with `decoder_input_details` on whole answers) or a stream's `details.input_length`
when the server reports them; otherwise they, and embeddings' tokens (feature extraction reports
none), are ESTIMATED at 4 characters a token (`workers.usage.estimate_tokens`). Such usage is
built by `estimated_usage`, so that it is recorded as estimated once `Usage` can say so.
There is no tool calling and no native route.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType, UpstreamRequest
from workers.providers.base import Completion, Provider, StreamItem, UpstreamError, scrub, translated_stream
from workers.providers.chunks import ChunkWriter
from workers.providers.openai_family import sse_data
from workers.usage import Usage, embeddings_usage_to_openai, estimate_tokens, usage_to_openai

# ---- private wire types -------------------------------------------------------------------------


class _Token(msgspec.Struct):
    text: str = ""
    special: bool = False


class _Details(msgspec.Struct):
    finish_reason: str | None = None
    generated_tokens: int | None = None
    prefill: list[msgspec.Raw] | None = None  # only counted: one entry per prompt token
    input_length: int | None = None  # stream details (TGI 2.x)


class _Generated(msgspec.Struct):
    generated_text: str = ""
    details: _Details | None = None


class _StreamEvent(msgspec.Struct):
    token: _Token | None = None
    generated_text: str | None = None
    details: _Details | None = None
    error: str | None = None


class _HFError(msgspec.Struct):
    error: str | list[str] | None = None
    error_type: str | None = None
    estimated_time: float | None = None


_encoder = msgspec.json.Encoder()
_body_decoder = msgspec.json.Decoder(dict[str, Any])
_generated_decoder = msgspec.json.Decoder(list[_Generated] | _Generated)
_event_decoder = msgspec.json.Decoder(_StreamEvent)
_error_decoder = msgspec.json.Decoder(_HFError)
_features_decoder = msgspec.json.Decoder(list[Any])

FINISH_REASONS = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}
ROLE_NAMES = {
    "system": "System",
    "developer": "System",
    "user": "User",
    "assistant": "Assistant",
    "tool": "Tool",
    "function": "Tool",
}

# ---- converters ---------------------------------------------------------------------------------


def estimated_usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    """Usage the gateway estimated. Marked as such when `Usage` has an `estimated` field (the
    handler then records usage_source 'estimated'); until then it is recorded like any other."""
    mark = {"estimated": True} if "estimated" in Usage.__struct_fields__ else {}
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, **mark)


def _invalid(message: str, param: str | None = None) -> UpstreamError:
    return UpstreamError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def _text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            raise _invalid("HuggingFace text generation takes text content only", "messages")
        texts.append(str(part.get("text") or ""))
    return "\n".join(texts)


def render_prompt(messages: list[Any], system_prompts: list[str]) -> str:
    """The conversation as one prompt (the template in the module docstring)."""
    lines = [f"System: {p}" for p in system_prompts]
    for m in messages:
        role = ROLE_NAMES.get(m.get("role") if isinstance(m, dict) else None)
        if role is None:
            raise _invalid("each message needs a known role", "messages")
        lines.append(f"{role}: {_text(m.get('content'))}")
    lines.append("Assistant:")
    return "\n".join(lines)


def chat_request_to_text_generation(body: dict[str, Any], system_prompts: list[str], stream: bool) -> tuple[dict[str, Any], str]:
    """(the text-generation request, its prompt). Sampling values the server refuses are left
    out: temperature must be > 0 (0 means greedy, the default) and top_p < 1 (1 means off)."""
    if body.get("tools"):
        raise _invalid("HuggingFace text generation has no tool calling", "tools")
    if (body.get("n") or 1) > 1:
        raise _invalid("HuggingFace text generation answers one choice per request: n must be 1", "n")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _invalid("`messages` must be an array", "messages")
    prompt = render_prompt(messages, system_prompts)
    parameters: dict[str, Any] = {"return_full_text": False, "details": True}
    if not stream:
        parameters["decoder_input_details"] = True  # prefill: the prompt's tokens, counted
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        parameters["max_new_tokens"] = max_tokens
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if temperature:
        parameters["temperature"] = temperature
    if top_p is not None and 0 < top_p < 1:
        parameters["top_p"] = top_p
    if body.get("seed") is not None:
        parameters["seed"] = body["seed"]
    stop = body.get("stop")
    if stop:
        parameters["stop"] = [stop] if isinstance(stop, str) else list(stop)
    return {"inputs": prompt, "parameters": parameters, "stream": stream}, prompt


def text_generation_usage(details: _Details | None, prompt: str, text: str) -> Usage:
    """Counted usage when the server gave every number, else partly estimated."""
    completion = details.generated_tokens if details is not None else None
    prompt_tokens = (len(details.prefill) if details.prefill else details.input_length) if details is not None else None
    if completion is not None and prompt_tokens is not None:
        return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion)
    return estimated_usage(
        prompt_tokens if prompt_tokens is not None else estimate_tokens(len(prompt)),
        completion if completion is not None else estimate_tokens(len(text)),
    )


def finish_reason(details: _Details | None) -> str:
    return FINISH_REASONS.get(details.finish_reason or "", "stop") if details is not None else "stop"


def text_generation_to_chat_completion(answer: _Generated, model: str, usage: Usage) -> bytes:
    return _encoder.encode(
        {
            "id": f"chatcmpl-hf-{time.time_ns():x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.generated_text},
                    "finish_reason": finish_reason(answer.details),
                }
            ],
            "usage": usage_to_openai(usage),
        }
    )


def _vector(item: Any) -> list[float]:
    """One input's features: a vector, or per-token vectors (a model without pooling), which are
    mean-pooled into one."""
    if item and isinstance(item[0], list):
        tokens = item[0] if item[0] and isinstance(item[0][0], list) else item  # [1][tokens][dim] too
        return [sum(column) / len(tokens) for column in zip(*tokens)]
    return [float(x) for x in item]


def features_to_embeddings(features: list[Any], texts: list[str], model: str) -> tuple[bytes, Usage]:
    if features and not isinstance(features[0], list):
        features = [features]  # one input answered with a bare vector
    if len(features) != len(texts):
        raise UpstreamError(
            502, f"the upstream answered {len(features)} vectors for {len(texts)} inputs", ErrorType.API, ErrorCode.UPSTREAM_ERROR
        )
    usage = estimated_usage(sum(estimate_tokens(len(t)) for t in texts), 0)
    data = [{"object": "embedding", "index": i, "embedding": _vector(item)} for i, item in enumerate(features)]
    body = {"object": "list", "data": data, "model": model, "usage": embeddings_usage_to_openai(usage.prompt_tokens)}
    return _encoder.encode(body), usage


def huggingface_error_to_upstream_error(
    status: int, body: bytes, headers: httpx.Headers, deployment: Deployment
) -> UpstreamError:
    """`{"error": "..." | [...], "error_type"?, "estimated_time"?}` as the client gets it: a model
    still loading is 503 with retry_after; a refused credential and other 5xx are 502; a prompt
    over the model's limit is `context_length_exceeded`; other 4xx pass through."""
    try:
        err = _error_decoder.decode(body)
    except msgspec.DecodeError:
        err = _HFError()
    raw = "; ".join(err.error) if isinstance(err.error, list) else err.error
    message = scrub(raw or body[:500].decode(errors="replace") or f"upstream answered {status}", deployment)
    if status in (401, 403):
        return UpstreamError(
            502,
            f"the upstream refused the credential of deployment {deployment.id} ({status})",
            ErrorType.API,
            ErrorCode.UPSTREAM_ERROR,
        )
    if status == 503 and (err.estimated_time is not None or "loading" in message.lower()):
        return UpstreamError(503, message, ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE, retry_after=err.estimated_time)
    if status == 429:
        value = headers.get("retry-after")
        retry = float(value) if value and value.replace(".", "", 1).isdigit() else None
        return UpstreamError(429, message, ErrorType.RATE_LIMIT, ErrorCode.RATE_LIMITED, retry_after=retry)
    if 400 <= status < 500:
        too_long = "`inputs` tokens" in message or "must have less than" in message
        return UpstreamError(status, message, ErrorType.INVALID_REQUEST, "context_length_exceeded" if too_long else None)
    return UpstreamError(502, f"upstream error {status}: {message}", ErrorType.API, ErrorCode.UPSTREAM_ERROR)


class HuggingFaceStreamTranslator:
    """generate_stream events -> chunks; `finished` after the event that carries `details`."""

    def __init__(self, deployment: Deployment, model: str, prompt: str, include_usage: bool) -> None:
        self.deployment, self.prompt, self.include_usage = deployment, prompt, include_usage
        self.out = ChunkWriter(model, "chatcmpl-hf")
        self.text: list[str] = []
        self.finished = False

    def feed(self, event: _StreamEvent) -> list[StreamItem]:
        if event.error is not None:
            text = scrub(event.error, self.deployment)
            raise UpstreamError(502, f"the upstream failed mid-answer: {text}", ErrorType.API, ErrorCode.UPSTREAM_ERROR)
        items: list[StreamItem] = []
        if event.token is not None and event.token.text and not event.token.special:
            self.text.append(event.token.text)
            items.append(self.out.chunk([{"index": 0, "delta": {"content": event.token.text}, "finish_reason": None}]))
        if event.details is not None or event.generated_text is not None:
            self.finished = True
            usage = text_generation_usage(event.details, self.prompt, "".join(self.text))
            items.append(self.out.chunk([{"index": 0, "delta": {}, "finish_reason": finish_reason(event.details)}]))
            items.append(usage)
            if self.include_usage:
                items.append(self.out.chunk([], usage))
        return self.out.opening() + items if items else items


# ---- the adapter --------------------------------------------------------------------------------


def _decoded(body: bytes) -> dict[str, Any]:
    try:
        return _body_decoder.decode(body)
    except msgspec.DecodeError:
        raise _invalid("the request body is not a JSON object") from None


def _invalid_answer() -> UpstreamError:
    return UpstreamError(502, "the upstream answered with invalid JSON", ErrorType.API, ErrorCode.UPSTREAM_ERROR)


class HuggingFaceInference(Provider):
    def _request(self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: bytes) -> httpx.Request:
        headers = {"content-type": "application/json", **dict(deployment.extra_headers)}
        if deployment.api_key is not None:
            headers["authorization"] = f"Bearer {deployment.api_key.reveal()}"
        url = httpx.URL(f"{deployment.base_for(upstream_model).rstrip('/')}/models/{upstream_model}")
        return self.client.request(url, httpx.Headers(headers), body, self.timeout_for(deployment, request))

    async def _post(self, deployment: Deployment, upstream: httpx.Request) -> bytes:
        return await self.fetch(upstream, deployment, huggingface_error_to_upstream_error)

    async def chat(self, deployment: Deployment, request: UpstreamRequest, upstream_model: str) -> Completion:
        body, prompt = chat_request_to_text_generation(_decoded(request.body), request.system_prompts, False)
        content = await self._post(deployment, self._request(deployment, request, upstream_model, _encoder.encode(body)))
        try:
            answers = _generated_decoder.decode(content)
        except msgspec.DecodeError:
            raise _invalid_answer() from None
        answer = answers if isinstance(answers, _Generated) else (answers[0] if answers else _Generated())
        usage = text_generation_usage(answer.details, prompt, answer.generated_text)
        return Completion(text_generation_to_chat_completion(answer, upstream_model, usage), usage)

    async def chat_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str
    ) -> AsyncIterator[StreamItem]:
        body, prompt = chat_request_to_text_generation(_decoded(request.body), request.system_prompts, True)
        upstream = self._request(deployment, request, upstream_model, _encoder.encode(body))
        async with self.open_stream(upstream, deployment, huggingface_error_to_upstream_error) as resp:
            translator = HuggingFaceStreamTranslator(deployment, upstream_model, prompt, request.include_usage)
            async for item in translated_stream(sse_data(self.client.chunks(resp)), _event_decoder.decode, translator):
                yield item

    async def embeddings(self, deployment: Deployment, request: UpstreamRequest, upstream_model: str) -> Completion:
        value = _decoded(request.body).get("input")
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise _invalid("feature extraction takes text: `input` must be a string or an array of strings", "input")
        body = _encoder.encode({"inputs": texts})
        content = await self._post(deployment, self._request(deployment, request, upstream_model, body))
        try:
            features = _features_decoder.decode(content)
        except msgspec.DecodeError:
            raise _invalid_answer() from None
        return Completion(*features_to_embeddings(features, texts, upstream_model))
