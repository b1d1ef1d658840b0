"""A speech request (`POST /v1/audio/speech`), checked as OpenAI's API reference defines it:
https://platform.openai.com/docs/api-reference/audio/createSpeech. Unknown fields are allowed
and go on to the provider as the client sent them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gateway.schemas import decoded

MAX_INPUT_CHARACTERS = 4096  # OpenAI's limit for one request's text


class SpeechVoice(msgspec.Struct):
    """A custom voice, by its id."""

    id: Annotated[str, msgspec.Meta(min_length=1)]


class SpeechRequest(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    input: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_INPUT_CHARACTERS)]
    voice: Annotated[str, msgspec.Meta(min_length=1)] | SpeechVoice
    instructions: str | None = None
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] | None = None
    speed: Annotated[float, msgspec.Meta(ge=0.25, le=4.0)] | None = None
    stream_format: Literal["sse", "audio"] | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None  # seconds (the gateway's; not sent upstream)


_speech_decoder = msgspec.json.Decoder(SpeechRequest)


def parse_speech(body: bytes) -> SpeechRequest:
    return decoded(_speech_decoder, body)
