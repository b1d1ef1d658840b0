"""Audio uploads as the edge hands them to a worker (`UpstreamRequest.body` of
`Operation.TRANSCRIPTION`).

The edge parses a transcription or translation upload (multipart/form-data) once, reads the
audio's duration from the file and sends the parts on as one msgpack `AudioUpload`; the worker
writes them out again as multipart for the deployment, with the upstream's model name and the
file's bytes as the client sent them. (Speech requests are JSON and travel as they came.)
"""

from __future__ import annotations

import msgspec


class AudioTask:
    """Which OpenAI endpoint an upload is for: `/audio/<task>`."""

    TRANSCRIPTIONS = "transcriptions"
    TRANSLATIONS = "translations"


class UploadPart(msgspec.Struct, frozen=True, array_like=True):
    """One part of a multipart/form-data body: a field, or a file when it has a filename."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


class AudioUpload(msgspec.Struct, frozen=True, kw_only=True):
    task: str  # AudioTask.*
    model: str  # as the client named it (the worker sends the upstream's name instead)
    parts: list[UploadPart]  # every part but `model`, in the client's order (the file among them)
    duration: float  # seconds of audio, read from the file by the edge
    response_format: str = "json"  # json, text, srt, verbose_json, vtt (diarized_json)
    stream: bool = False  # the client asked for server-sent events (gpt-4o-*-transcribe)


_upload_encoder = msgspec.msgpack.Encoder()
_upload_decoder = msgspec.msgpack.Decoder(AudioUpload)

encode_audio_upload = _upload_encoder.encode
decode_audio_upload = _upload_decoder.decode

__all__ = ["AudioTask", "AudioUpload", "UploadPart", "decode_audio_upload", "encode_audio_upload"]
