"""The fake OpenAI upstream's streamed answers (see fake_openai.py): the server-sent events of a
chat completion and of a Responses API response, paced by the chunk delay (the fake's
`--chunk-delay-ms`, or `fake-chunk-delay-<ms>` as the model), and cut short for
`fake-stream-fail` (the connection dropped mid-answer):
  https://platform.openai.com/docs/api-reference/chat/streaming
  https://platform.openai.com/docs/api-reference/responses-streaming
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bench import fake_openai_payloads as payloads
from bench import fake_openai_responses as responses_payloads
from bench.fake_http import DropConnection, suffix_ms
from bench.fake_openai_payloads import ChunkWriter

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
STREAM_FAIL_AFTER_WORDS = 3


def wants_usage(body: dict) -> bool:
    """The request asked for the usage chunk (`stream_options.include_usage`)."""
    stream_options = body.get("stream_options")
    return isinstance(stream_options, dict) and stream_options.get("include_usage") is True


def chunk_delay_s(model: str, default_s: float) -> float:
    """Seconds between chunks: `fake-chunk-delay-<ms>`'s, else the fake's own."""
    delay_ms = suffix_ms(model, "fake-chunk-delay-")
    return default_s if delay_ms is None else delay_ms / 1000


async def each(events: list[bytes]) -> AsyncIterator[bytes]:
    """The events, one chunk each, without delay."""
    for event in events:
        yield event


async def chat_events(
    model: str, n: int, finish_reason: str, usage: dict, include_usage: bool, default_delay_s: float
) -> AsyncIterator[bytes]:
    """A chat completion's chunks: the role, `n` words (one delta, for fake-long...), the finish
    (and the usage) and [DONE]."""
    delay_s = chunk_delay_s(model, default_delay_s)
    fail = model == "fake-stream-fail"
    chunks = ChunkWriter(model, include_usage)
    yield chunks.delta({"role": "assistant", "content": ""})
    if model.startswith(payloads.LONG_MODEL_PREFIX):  # the whole answer in one delta: one chunk of megabytes
        yield chunks.delta({"content": payloads.reply_text(n)})
        n = 0
    for i in range(STREAM_FAIL_AFTER_WORDS if fail else n):
        if delay_s:
            await asyncio.sleep(delay_s)
        yield chunks.word(i)
    if fail:
        raise DropConnection  # no finish chunk, no [DONE], no end of the chunked body
    if delay_s:
        await asyncio.sleep(delay_s)
    tail = chunks.delta({}, finish_reason)
    if include_usage:
        tail += chunks.usage(usage)
    yield tail + payloads.DONE_EVENT


async def response_events(writer: responses_payloads.ResponseWriter, model: str, default_delay_s: float) -> AsyncIterator[bytes]:
    """A Responses API response's events, the delay before each text delta."""
    fail = model == "fake-stream-fail"
    delay_s = chunk_delay_s(model, default_delay_s)
    for event in writer.events(responses_payloads.STREAM_FAIL_AFTER_WORDS if fail else None):
        if delay_s and b"response.output_text.delta" in event:
            await asyncio.sleep(delay_s)
        yield event
    if fail:
        raise DropConnection  # no response.completed, no end of the chunked body
