"""Legacy text completions for providers that only chat: each prompt becomes one user message,
each chat answer a `text_completion` choice, each chat chunk a `text_completion` chunk.

References: https://platform.openai.com/docs/api-reference/completions/create (the request,
the `text_completion` object, and its stream: `data: {...}` chunks, `[DONE]` last) and
https://platform.openai.com/docs/api-reference/chat (what the adapters answer).

Every one of the `n` answers of every prompt is its own chat call (chat providers such as
Anthropic offer no `n`), made at once (up to CONCURRENT_CALLS at a time) for a whole answer and one after the other for a stream;
choice `index` is `prompt * n + answer`, as OpenAI numbers them. `echo` puts the prompt before
the text; `best_of` is not offered by chat and is read as `n`. What chat cannot express is
refused with a 400 naming the field: `suffix`, `logprobs`, prompts given as token ids.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec

from llmgw.config import Deployment
from llmgw.contracts import UpstreamRequest
from workers.providers.answers import Completion, StreamItem
from workers.providers.errors import UpstreamError, invalid_answer, invalid_request
from workers.providers.request_body import RequestBody
from workers.usage import Usage, estimate_tokens, usage_to_openai

if TYPE_CHECKING:
    from workers.providers.base import Provider

DEFAULT_MAX_TOKENS = 16  # the completions API's default length
CONCURRENT_CALLS = 8  # chat calls of one whole answer made at a time
CHAT_FIELDS = ("stop", "temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "user")


class LegacyCompletion(msgspec.Struct, frozen=True):
    """The fields of a completions request the translation reads (the edge validated them)."""

    prompt: str | list[str | int | list[int]] = ""
    max_tokens: int | None = None
    n: int | None = None
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = None


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    finish_reason: str | None = None


class _ChatAnswer(msgspec.Struct):
    created: int = 0
    model: str = ""
    choices: list[_Choice] = []


class _Delta(msgspec.Struct):
    content: str | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    model: str = ""
    choices: list[_ChunkChoice] = []


_legacy_decoder = msgspec.json.Decoder(LegacyCompletion)
_answer_decoder = msgspec.json.Decoder(_ChatAnswer)
_chunk_decoder = msgspec.json.Decoder(_Chunk)
_encoder = msgspec.json.Encoder()


def legacy_request(body: RequestBody) -> tuple[LegacyCompletion, dict[str, Any]]:
    """The request's fields the translation reads, and its top-level fields (a cost cap's lower
    `max_tokens` included)."""
    fields = body.fields()
    try:
        return _legacy_decoder.decode(_encoder.encode(fields)), fields
    except msgspec.ValidationError as exc:
        raise invalid_request(f"the request does not fit the completions API: {exc}") from None


def chat_prompts(legacy: LegacyCompletion, deployment: Deployment) -> list[str]:
    """The prompts as texts; 400 for what a chat provider cannot take."""
    without = f"provider {deployment.provider} has no completions API (deployment {deployment.id}), so"
    if legacy.suffix:
        raise invalid_request(f"{without} `suffix` cannot be served", "suffix")
    if legacy.logprobs is not None:
        raise invalid_request(f"{without} `logprobs` cannot be served", "logprobs")
    if legacy.max_tokens == 0:
        raise invalid_request(f"{without} `max_tokens` must be at least 1", "max_tokens")
    prompt = legacy.prompt
    texts = [prompt] if isinstance(prompt, str) else prompt
    if not all(isinstance(t, str) for t in texts):
        raise invalid_request(f"{without} prompts must be text, not token ids", "prompt")
    return texts  # type: ignore[return-value]


def chat_body(fields: dict[str, Any], legacy: LegacyCompletion, model: str, prompt: str, stream: bool) -> RequestBody:
    """One chat request for one answer to `prompt`."""
    data: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": legacy.max_tokens or DEFAULT_MAX_TOKENS,
    }
    data.update((name, fields[name]) for name in CHAT_FIELDS if name in fields)
    if stream:
        data["stream"] = True
    return RequestBody(_encoder.encode(data))


def completion_id(request: UpstreamRequest) -> str:
    return "cmpl-" + request.request_id.removeprefix("req-")


def added(total: Usage, more: Usage) -> Usage:
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
        cached_tokens=total.cached_tokens + more.cached_tokens,
        reasoning_tokens=total.reasoning_tokens + more.reasoning_tokens,
        cache_write_tokens=total.cache_write_tokens + more.cache_write_tokens,
        estimated=total.estimated or more.estimated,
    )


def _guessed(prompt: str, text_chars: int) -> Usage:
    """Usage of one call the provider did not count."""
    return Usage(prompt_tokens=estimate_tokens(len(prompt)), completion_tokens=estimate_tokens(text_chars), estimated=True)


def _choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}


def _calls(prompts: list[str], legacy: LegacyCompletion) -> list[tuple[int, str]]:
    n = legacy.n or 1
    return [(i * n + j, prompt) for i, prompt in enumerate(prompts) for j in range(n)]


async def completions_via_chat(
    provider: Provider, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody
) -> Completion:
    """A whole `text_completion` from one chat call per answer, made at once."""
    legacy, fields = legacy_request(body)
    calls = _calls(chat_prompts(legacy, deployment), legacy)
    gate = asyncio.Semaphore(CONCURRENT_CALLS)

    async def one_answer(prompt: str) -> Completion:
        async with gate:
            return await provider.chat(
                deployment, request, upstream_model, chat_body(fields, legacy, upstream_model, prompt, False)
            )

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one_answer(p)) for _, p in calls]
    except* UpstreamError as failed:
        raise failed.exceptions[0] from None
    choices, usage, created, model = [], Usage(), 0, ""
    for (index, prompt), task in zip(calls, tasks, strict=True):
        completion = task.result()
        try:
            answer = _answer_decoder.decode(completion.body)
        except msgspec.DecodeError:
            raise invalid_answer() from None
        first = answer.choices[0] if answer.choices else _Choice()
        text = first.message.content if first.message is not None and first.message.content else ""
        choices.append(_choice(index, (prompt + text) if legacy.echo else text, first.finish_reason))
        usage = added(usage, completion.usage or _guessed(prompt, len(text)))
        created, model = created or answer.created, model or answer.model
    document = {
        "id": completion_id(request),
        "object": "text_completion",
        "created": created or int(time.time()),
        "model": model or upstream_model,
        "choices": choices,
        "usage": usage_to_openai(usage),
    }
    return Completion(_encoder.encode(document), usage)


async def completions_stream_via_chat(
    provider: Provider, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody
) -> AsyncIterator[StreamItem]:
    """`text_completion` chunks from one chat stream per answer, one after the other; the usage
    so far after each (the usage chunk last, when the client asked for it)."""
    legacy, fields = legacy_request(body)
    calls = _calls(chat_prompts(legacy, deployment), legacy)
    inner = msgspec.structs.replace(request, include_usage=False)  # (usage comes as Usage items)
    base = {"id": completion_id(request), "object": "text_completion", "created": int(time.time()), "model": upstream_model}
    total = Usage()
    for index, prompt in calls:
        if legacy.echo:
            yield _encoder.encode({**base, "choices": [_choice(index, prompt, None)]})
        used: Usage | None = None
        chars = 0
        async for item in provider.chat_stream(
            deployment, inner, upstream_model, chat_body(fields, legacy, upstream_model, prompt, True)
        ):
            if isinstance(item, Usage):
                used = item
                continue
            try:
                chunk = _chunk_decoder.decode(item)
            except msgspec.DecodeError:
                raise invalid_answer("the upstream sent an invalid stream chunk") from None
            for choice in chunk.choices:
                text = choice.delta.content if choice.delta is not None else None
                if not text and choice.finish_reason is None:
                    continue  # the role chunk
                chars += len(text or "")
                yield _encoder.encode(
                    {
                        **base,
                        "model": chunk.model or upstream_model,
                        "choices": [_choice(index, text or "", choice.finish_reason)],
                    }
                )
        total = added(total, used or _guessed(prompt, chars))
        yield total
    if request.include_usage:
        yield _encoder.encode({**base, "choices": [], "usage": usage_to_openai(total)})
