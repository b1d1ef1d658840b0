"""The audio routes in the OpenAPI document (gateway/openapi.py): their request bodies (the upload
forms written out as gateway/audio/upload.py checks them; speech from its Struct) and answers."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.audio.speech import SpeechRequest
from gateway.audio.upload import MAX_FILE_BYTES, RESPONSE_FORMATS, TIMESTAMP_GRANULARITIES
from gateway.openapi_schemas import REF, obj, ref
from llmgw.contracts import AudioTask

FORM = "multipart/form-data"
TEXT = {"type": "string"}


def upload_form(task: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "contentMediaType": "application/octet-stream",
            "description": f"The audio (flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm), at most {MAX_FILE_BYTES} bytes.",
        },
        "model": {"type": "string", "minLength": 1},
        "prompt": TEXT,
        "response_format": {"enum": list(RESPONSE_FORMATS[task]), "default": "json"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    }
    if task == AudioTask.TRANSCRIPTIONS:
        properties["language"] = TEXT
        properties["timestamp_granularities[]"] = {"type": "array", "items": {"enum": list(TIMESTAMP_GRANULARITIES)}}
        properties["stream"] = {"type": "boolean", "description": "Server-sent events (gpt-4o-*-transcribe)."}
    return {"type": "object", "required": ["file", "model"], "properties": properties}


def upload_body(task: str, schema: str) -> dict[str, Any]:
    encoding = {"file": {"contentType": "application/octet-stream"}}
    return {"required": True, "content": {FORM: {"schema": ref(schema), "encoding": encoding}}}


def transcript_answers(with_events: bool) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": ref("Transcript")},
        "text/plain": {"schema": {"type": "string", "description": "text, srt or vtt, as asked for."}},
    }
    if with_events:
        content["text/event-stream"] = {"schema": ref("TranscriptStreamEvent")}
    return content


SPEECH_ANSWERS = {
    f"audio/{kind}": {"schema": {"type": "string", "contentMediaType": f"audio/{kind}"}}
    for kind in ("mpeg", "opus", "aac", "flac", "wav", "pcm")
} | {"text/event-stream": {"schema": ref("SpeechStreamEvent")}}

# path -> (summary, request body, the 200 answer's content)
AUDIO_OPERATIONS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "/v1/audio/transcriptions": (
        "Transcribe audio (multipart upload; metered by its seconds, or the tokens the provider reports).",
        upload_body(AudioTask.TRANSCRIPTIONS, "TranscriptionForm"),
        transcript_answers(with_events=True),
    ),
    "/v1/audio/translations": (
        "Translate audio into English text (multipart upload; metered by its seconds).",
        upload_body(AudioTask.TRANSLATIONS, "TranslationForm"),
        transcript_answers(with_events=False),
    ),
    "/v1/audio/speech": (
        "Speak a text: the audio streamed back as it is made (metered by the input's characters).",
        {"required": True, "content": {"application/json": {"schema": ref("SpeechRequest")}}},
        SPEECH_ANSWERS,
    ),
}


def audio_schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components((SpeechRequest,), ref_template=REF)
    return {
        **components,
        "TranscriptionForm": upload_form(AudioTask.TRANSCRIPTIONS),
        "TranslationForm": upload_form(AudioTask.TRANSLATIONS),
        "Transcript": obj(["text"], text={"type": "string"}, usage={"type": "object"}, duration={"type": "number"}),
        "TranscriptStreamEvent": obj(["data"], data={"type": "string", "description": "A transcript.text.* event as JSON."}),
        "SpeechStreamEvent": obj(["data"], data={"type": "string", "description": "A speech.audio.* event as JSON."}),
    }
