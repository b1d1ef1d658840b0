"""The audio routes: `POST /v1/audio/transcriptions`, `/v1/audio/translations` (multipart uploads)
and `/v1/audio/speech` (JSON in, the audio's bytes streamed back as they arrive); also without
`/v1` and under `/openai`. Any deployment whose adapter speaks OpenAI's audio API serves them
(the OpenAI family; Azure OpenAI at its deployment URLs).

Budgets: an upload's worst case is the duration read from its file (`Units.audio_seconds`,
rounded up to the second as providers bill) and, for models billed by audio tokens, at most
AUDIO_TOKENS_PER_SECOND tokens a second plus the prompt's; speech is its input's characters
(known before the call: the worst case is the cost).
"""

from __future__ import annotations

import math

from litestar.handlers import asgi

from gateway.asgi_io import Receive, Scope, Send
from gateway.audio.speech import parse_speech
from gateway.audio.upload import MAX_BODY_BYTES, read_upload
from gateway.edge import Edge
from gateway.native_api import RAW_STREAM, RawStream
from gateway.openai_api import openai_paths
from gateway.pipeline import pipeline_of
from gateway.routes import Call, Headers, Incoming, Route
from llmgw.contracts import AudioTask, Completed, Operation, Units, encode_audio_upload

# At most this many input tokens a second of audio, for models billed by tokens
# (gpt-4o-transcribe counts about 10).
AUDIO_TOKENS_PER_SECOND = 25


def _content_type(scope: Scope) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), None)


class TranscriptionRoute(Route):
    """Speech to text: `transcriptions`, or `translations` into English."""

    operation = Operation.TRANSCRIPTION
    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, task: str) -> None:
        self.task = task

    def incoming(self, scope: Scope) -> Incoming:
        incoming = super().incoming(scope)
        incoming.content_type = _content_type(scope)
        return incoming

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        read = read_upload(self.task, incoming.content_type, body)
        seconds = math.ceil(read.upload.duration)
        return Call(
            read.upload.model,
            encode_audio_upload(read.upload),
            stream=read.upload.stream,
            units=Units(audio_seconds=float(seconds)),
            prompt_bytes=len(read.prompt.encode()) + seconds * AUDIO_TOKENS_PER_SECOND,
        )

    def whole(self, reply: Completed, call: Call, request_id: str) -> tuple[int, Headers, bytes]:
        """The provider's answer in the format asked for (JSON, text or subtitles), its content type kept."""
        content_type = next((v for k, v in reply.headers if k == "content-type"), "application/json")
        return reply.status, [(b"content-type", content_type.encode("latin-1"))], reply.body

    def stream(self, call: Call, request_id: str) -> RawStream:
        return RAW_STREAM  # (gpt-4o-*-transcribe's server-sent events, as the provider sent them)


class SpeechRoute(Route):
    """Text to speech: the provider's audio bytes relayed as they arrive."""

    operation = Operation.SPEECH

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        request = parse_speech(body)
        return Call(request.model, body, stream=True, units=Units(characters=len(request.input)), timeout=request.timeout)

    def stream(self, call: Call, request_id: str) -> RawStream:
        return RAW_STREAM


TRANSCRIPTIONS = TranscriptionRoute(AudioTask.TRANSCRIPTIONS)
TRANSLATIONS = TranscriptionRoute(AudioTask.TRANSLATIONS)
SPEECH = SpeechRoute()


@asgi(openai_paths("audio/transcriptions"), copy_scope=False)
async def transcriptions(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, TRANSCRIPTIONS)


@asgi(openai_paths("audio/translations"), copy_scope=False)
async def translations(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, TRANSLATIONS)


@asgi(openai_paths("audio/speech"), copy_scope=False)
async def speech(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, SPEECH)


ROUTES = [transcriptions, translations, speech]
