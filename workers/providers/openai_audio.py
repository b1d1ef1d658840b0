"""OpenAI's audio API, as the OpenAI family (and Azure OpenAI) answers it: what comes back and
what it used.

API reference: https://platform.openai.com/docs/api-reference/audio
- createTranscription / createTranslation: multipart/form-data in; out JSON (`{"text", "usage"}`,
  or verbose_json with `duration`), text, srt or vtt (text/plain), or with `stream` (the
  gpt-4o-*-transcribe models) server-sent `transcript.text.delta` events and a
  `transcript.text.done` carrying the usage. `usage` is `{"type": "duration", "seconds"}` for
  models billed by the second (whisper-1) or `{"type": "tokens", "input_tokens",
  "output_tokens", ...}` for models billed by tokens.
- createSpeech: JSON in; out the audio's bytes (mp3, opus, aac, flac, wav, pcm), or with
  `stream_format: "sse"` `speech.audio.delta` events and a `speech.audio.done` with token usage.

What is metered: the tokens the provider reports, when the model is priced by tokens; else the
seconds of audio (the provider's `usage.seconds` or `duration`, else the duration the edge read
from the file) or, for speech, the characters of the input. The answer goes back as the provider
sent it (status, content type, bytes), speech and event streams chunk by chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import AudioUpload, Units, UpstreamRequest, decode_audio_upload
from llmgw.prices import price_for
from workers.http_client import UpstreamClient
from workers.providers.answers import NativeHead, NativeItem
from workers.providers.errors import invalid_request
from workers.providers.native import kept_headers
from workers.providers.request_body import RequestBody, json_value
from workers.providers.sse import SseData
from workers.usage import Usage

MAX_PIECE = 32 * 1024  # bytes of audio per relayed chunk (a batch of them stays under a bus message)
MAX_WHOLE = 256 * 1024  # bytes of a transcript sent back in one reply; a longer one goes in pieces
JSON_FORMATS = ("json", "verbose_json", "diarized_json")

# ---- private wire types ---------------------------------------------------------------------


class _AudioUsage(msgspec.Struct):
    type: str | None = None  # "duration" or "tokens"
    seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


class _TranscriptProbe(msgspec.Struct):
    usage: _AudioUsage | None = None
    duration: float | None = None  # verbose_json


class _EventProbe(msgspec.Struct):
    type: str = ""
    usage: _AudioUsage | None = None


_transcript_decoder = msgspec.json.Decoder(_TranscriptProbe)
_event_decoder = msgspec.json.Decoder(_EventProbe)

# ---- converters -----------------------------------------------------------------------------


def bills_tokens(deployment: Deployment, upstream_model: str) -> bool:
    """Whether reported tokens are what to meter: the model has a token price (or no price at
    all), not only a price per second or per character."""
    price = price_for(deployment, upstream_model)
    if price is None:
        return True
    return price.input > 0 or price.output > 0 or (price.audio_second is None and price.character is None)


def _tokens(reported: _AudioUsage | None) -> Usage | None:
    """Token usage: `{"type": "tokens", ...}` of a transcription, or speech's untyped one."""
    if reported is None or reported.type not in (None, "tokens"):
        return None
    if reported.input_tokens is None and reported.output_tokens is None:
        return None
    return Usage(prompt_tokens=reported.input_tokens or 0, completion_tokens=reported.output_tokens or 0)


def transcription_usage(reported: _AudioUsage | None, duration: float | None, upload: AudioUpload, by_tokens: bool) -> Usage:
    """Tokens when the provider counts them and the model is priced so; else the provider's
    seconds (`usage.seconds`, or verbose_json's `duration`); else the file's duration."""
    tokens = _tokens(reported) if by_tokens else None
    if tokens is not None:
        return tokens
    if reported is not None and reported.type == "duration" and reported.seconds is not None and reported.seconds >= 0:
        return Usage(units=Units(audio_seconds=reported.seconds))
    if duration is not None and duration >= 0:
        return Usage(units=Units(audio_seconds=duration))
    return Usage(units=Units(audio_seconds=upload.duration), estimated=True)  # the gateway's own count


def speech_usage(reported: _AudioUsage | None, characters: int, by_tokens: bool) -> Usage:
    """Tokens when the provider counts them (`stream_format: "sse"`) and the model is priced so;
    else the characters of the input."""
    tokens = _tokens(reported) if by_tokens else None
    return tokens if tokens is not None else Usage(units=Units(characters=characters), estimated=True)


def audio_upload(request: UpstreamRequest) -> AudioUpload:
    try:
        return decode_audio_upload(request.body)
    except msgspec.DecodeError:
        raise invalid_request("the request is not an audio upload") from None


def speech_characters(body: RequestBody) -> int:
    """The characters of a speech request's `input` (what the edge checked is there)."""
    fields = body.fields()
    text = json_value(fields["input"]) if "input" in fields else None
    if not isinstance(text, str):
        raise invalid_request("`input` must be a string")
    return len(text)


def _event_usage(data: bytes) -> _AudioUsage | None:
    if b'"usage"' not in data:
        return None  # deltas carry no usage: skip them without parsing
    try:
        return _event_decoder.decode(data).usage
    except msgspec.DecodeError:
        return None


def _is_event_stream(resp: httpx.Response) -> bool:
    return resp.headers.get("content-type", "").startswith("text/event-stream")


# ---- answers ----------------------------------------------------------------------------------


async def transcription_items(
    client: UpstreamClient, resp: httpx.Response, upload: AudioUpload, by_tokens: bool
) -> AsyncIterator[NativeItem]:
    """A transcription's answer as the worker relays it: the head, the bytes, the usage last."""
    headers = kept_headers(resp.headers)
    if _is_event_stream(resp):
        yield NativeHead(resp.status_code, headers, stream=True)
        events, reported = SseData(), None
        async for chunk in client.chunks(resp):
            for data in events.feed(chunk):
                reported = _event_usage(data) or reported
            yield chunk
        yield transcription_usage(reported, None, upload, by_tokens)
        return
    content = await client.read(resp)
    if len(content) <= MAX_WHOLE:
        yield NativeHead(resp.status_code, headers, stream=False)
        yield content
    else:  # (hours of verbose_json with word timestamps): relayed in pieces, not in one bus message
        yield NativeHead(resp.status_code, headers, stream=True)
        for start in range(0, len(content), MAX_PIECE):
            yield content[start : start + MAX_PIECE]
    probe = _TranscriptProbe()
    if upload.response_format in JSON_FORMATS:
        try:
            probe = _transcript_decoder.decode(content)
        except msgspec.DecodeError:
            pass  # (relayed as it came; metered by the file's duration)
    yield transcription_usage(probe.usage, probe.duration, upload, by_tokens)


async def speech_items(
    client: UpstreamClient, resp: httpx.Response, characters: int, by_tokens: bool
) -> AsyncIterator[NativeItem]:
    """Speech as the worker relays it: the head at once, the audio in pieces as it arrives."""
    yield NativeHead(resp.status_code, kept_headers(resp.headers), stream=True)
    events = SseData() if _is_event_stream(resp) else None
    reported: _AudioUsage | None = None
    async for chunk in client.chunks(resp):
        if events is not None:
            for data in events.feed(chunk):
                reported = _event_usage(data) or reported
        if len(chunk) <= MAX_PIECE:
            yield chunk
        else:
            for start in range(0, len(chunk), MAX_PIECE):
                yield chunk[start : start + MAX_PIECE]
    yield speech_usage(reported, characters, by_tokens)
