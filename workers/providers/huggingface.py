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
built by `estimated_usage` and recorded as estimated.
There is no tool calling and no native route.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import UpstreamRequest
from workers.providers.answers import Completion, StreamItem
from workers.providers.base import Provider, translated_stream
from workers.providers.chunks import ChunkWriter
from workers.providers.errors import (
    ErrorKind,
    ProviderError,
    error_reader,
    failed_mid_answer,
    invalid_answer,
    invalid_request,
)
from workers.providers.openai_request import ChatMessage, ChatRequest, Content
from workers.providers.request_body import RequestBody
from workers.providers.sse import sse_data
from workers.usage import Usage, embeddings_usage_to_openai, estimate_tokens, estimated_usage, usage_to_openai

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


def _text(content: Content) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part in content:
        if part.type != "text":
            raise invalid_request("HuggingFace text generation takes text content only", "messages")
        texts.append(part.text or "")
    return "\n".join(texts)


def render_prompt(messages: list[ChatMessage], system_prompts: list[str]) -> str:
    """The conversation as one prompt (the template in the module docstring)."""
    lines = [f"System: {p}" for p in system_prompts]
    for m in messages:
        role = ROLE_NAMES.get(m.role)
        if role is None:
            raise invalid_request("each message needs a known role", "messages")
        lines.append(f"{role}: {_text(m.content)}")
    lines.append("Assistant:")
    return "\n".join(lines)


def chat_request_to_text_generation(chat: ChatRequest, system_prompts: list[str], stream: bool) -> tuple[dict[str, Any], str]:
    """(the text-generation request, its prompt). Sampling values the server refuses are left
    out: temperature must be > 0 (0 means greedy, the default) and top_p < 1 (1 means off)."""
    if chat.tools:
        raise invalid_request("HuggingFace text generation has no tool calling", "tools")
    if (chat.n or 1) > 1:
        raise invalid_request("HuggingFace text generation answers one choice per request: n must be 1", "n")
    prompt = render_prompt(chat.messages, system_prompts)
    parameters: dict[str, Any] = {"return_full_text": False, "details": True}
    if not stream:
        parameters["decoder_input_details"] = True  # prefill: the prompt's tokens, counted
    max_tokens = chat.max_completion_tokens or chat.max_tokens
    if max_tokens:
        parameters["max_new_tokens"] = max_tokens
    if chat.temperature:
        parameters["temperature"] = chat.temperature
    if chat.top_p is not None and 0 < chat.top_p < 1:
        parameters["top_p"] = chat.top_p
    if chat.seed is not None:
        parameters["seed"] = chat.seed
    if chat.stop:
        parameters["stop"] = [chat.stop] if isinstance(chat.stop, str) else list(chat.stop)
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
        return [sum(column) / len(tokens) for column in zip(*tokens, strict=False)]
    return [float(x) for x in item]


def features_to_embeddings(features: list[Any], texts: list[str], model: str) -> tuple[bytes, Usage]:
    if features and not isinstance(features[0], list):
        features = [features]  # one input answered with a bare vector
    if len(features) != len(texts):
        raise invalid_answer(f"the upstream answered {len(features)} vectors for {len(texts)} inputs")
    usage = estimated_usage(sum(estimate_tokens(len(t)) for t in texts), 0)
    data = [{"object": "embedding", "index": i, "embedding": _vector(item)} for i, item in enumerate(features)]
    body = {"object": "list", "data": data, "model": model, "usage": embeddings_usage_to_openai(usage.prompt_tokens)}
    return _encoder.encode(body), usage


def huggingface_error_to_provider_error(status: int, body: bytes) -> ProviderError:
    """`{"error": "..." | [...], "error_type"?, "estimated_time"?}`: a model still loading is
    unavailable for `estimated_time` seconds; a prompt over the model's limit says so."""
    try:
        err = _error_decoder.decode(body)
    except msgspec.DecodeError:
        err = _HFError()
    message = ("; ".join(err.error) if isinstance(err.error, list) else err.error) or None
    text = message or body.decode(errors="replace")
    if status == 503 and (err.estimated_time is not None or "loading" in text.lower()):
        return ProviderError(message=message, hint=ErrorKind.UNAVAILABLE, retry_after=err.estimated_time)
    too_long = "`inputs` tokens" in text or "must have less than" in text
    return ProviderError(message=message, hint=ErrorKind.CONTEXT_WINDOW_EXCEEDED if too_long else None)


huggingface_error_to_upstream_error = error_reader(huggingface_error_to_provider_error)


class HuggingFaceStreamTranslator:
    """generate_stream events -> chunks; `finished` after the event that carries `details`."""

    def __init__(self, deployment: Deployment, model: str, prompt: str, include_usage: bool) -> None:
        self.deployment, self.prompt, self.include_usage = deployment, prompt, include_usage
        self.out = ChunkWriter(model, "chatcmpl-hf")
        self.text: list[str] = []
        self.finished = False

    def feed(self, event: _StreamEvent) -> list[StreamItem]:
        if event.error is not None:
            raise failed_mid_answer(event.error, self.deployment)
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


class HuggingFaceInference(Provider):
    def _request(self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: bytes) -> httpx.Request:
        headers = {"content-type": "application/json", **dict(deployment.extra_headers)}
        if deployment.api_key is not None:
            headers["authorization"] = f"Bearer {deployment.api_key.reveal()}"
        url = httpx.URL(f"{deployment.base_for(upstream_model).rstrip('/')}/models/{upstream_model}")
        return self.client.request(url, httpx.Headers(headers), body, self.timeout_for(deployment, request))

    async def _post(self, deployment: Deployment, upstream: httpx.Request) -> bytes:
        return await self.fetch(upstream, deployment, huggingface_error_to_upstream_error)

    async def chat(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        chat = RequestBody.of(request, body).chat()
        sent, prompt = chat_request_to_text_generation(chat, request.system_prompts, False)
        content = await self._post(deployment, self._request(deployment, request, upstream_model, _encoder.encode(sent)))
        try:
            answers = _generated_decoder.decode(content)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        answer = answers if isinstance(answers, _Generated) else (answers[0] if answers else _Generated())
        usage = text_generation_usage(answer.details, prompt, answer.generated_text)
        return Completion(text_generation_to_chat_completion(answer, upstream_model, usage), usage)

    async def chat_stream(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> AsyncIterator[StreamItem]:
        chat = RequestBody.of(request, body).chat()
        sent, prompt = chat_request_to_text_generation(chat, request.system_prompts, True)
        upstream = self._request(deployment, request, upstream_model, _encoder.encode(sent))
        async with self.open_stream(upstream, deployment, huggingface_error_to_upstream_error) as resp:
            translator = HuggingFaceStreamTranslator(deployment, upstream_model, prompt, request.include_usage)
            async for item in translated_stream(sse_data(self.client.chunks(resp)), _event_decoder.decode, translator):
                yield item

    async def embeddings(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        texts = RequestBody.of(request, body).embeddings().texts()
        if texts is None:
            raise invalid_request("feature extraction takes text: `input` must be a string or an array of strings", "input")
        sent = _encoder.encode({"inputs": texts})
        content = await self._post(deployment, self._request(deployment, request, upstream_model, sent))
        try:
            features = _features_decoder.decode(content)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        return Completion(*features_to_embeddings(features, texts, upstream_model))
