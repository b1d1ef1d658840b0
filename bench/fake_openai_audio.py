"""The audio endpoints of the fake OpenAI upstream (bench/fake_openai.py), in OpenAI's wire format:
  https://platform.openai.com/docs/api-reference/audio/createTranscription  (multipart in; json,
      text, srt, vtt, verbose_json out; `stream` events transcript.text.delta / .done)
  https://platform.openai.com/docs/api-reference/audio/createTranslation
  https://platform.openai.com/docs/api-reference/audio/createSpeech         (JSON in, audio bytes
      out, chunked; `stream_format: "sse"` events speech.audio.delta / .done)
and at Azure OpenAI's deployment paths (/openai/deployments/{deployment}/audio/...).

Transcriptions and translations take a WAV `file` (its duration is read from the header with the
standard library; any other file is refused as OpenAI refuses one it cannot decode) and a `model`.
The transcript is one word a second of audio, "w0 w1 ..." (`transcript_text`). Usage, as OpenAI
reports it: models named `*transcribe*` count tokens (input: AUDIO_TOKENS_PER_SECOND a second,
rounded up, plus the prompt's words; output: the transcript's words) and take json or text only;
other models report `{"type": "duration", "seconds": <seconds rounded up>}`; translations report
no usage. `stream=true` with a `*transcribe*` model answers events, one delta a word.

Speech answers `speech_audio(input, response_format)`: deterministic bytes, SPEECH_BYTES_PER_CHAR
a character of input, sent in chunks of SPEECH_CHUNK bytes (with the fake's chunk delay, or
`fake-chunk-delay-<ms>` as the model, between them). With `stream_format: "sse"` (refused for
tts-1 and tts-1-hd, as OpenAI does) the same bytes come base64-encoded in speech.audio.delta events,
then speech.audio.done with usage: input tokens = the input's words, output tokens = audio bytes
/ SPEECH_BYTES_PER_CHAR. Fault models (`fake-error-*`) answer their error on every endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import math
import wave
from collections.abc import AsyncIterator
from typing import Any

from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from bench.fake_http import Request, Response, StreamResponse, suffix_ms
from bench.fake_openai_payloads import decode_json, encode_json, error_body

AUDIO_TOKENS_PER_SECOND = 10
SPEECH_BYTES_PER_CHAR = 64
SPEECH_CHUNK = 4096
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
SPEECH_FORMATS = {
    "mp3": ("audio/mpeg", b"ID3\x04\x00\x00\x00\x00\x00\x00"),
    "opus": ("audio/opus", b"OggS"),
    "aac": ("audio/aac", b"\xff\xf1"),
    "flac": ("audio/flac", b"fLaC"),
    "wav": ("audio/wav", b"RIFF"),
    "pcm": ("audio/pcm", b""),
}
SUPPORTED = "['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']"
TEXT_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}
JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}

Fault = tuple[int, str, str, "str | None", "str | None", dict]


class Invalid(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def transcript_text(seconds: float) -> str:
    return " ".join(f"w{i}" for i in range(max(1, math.ceil(seconds))))


def speech_audio(text: str, response_format: str = "mp3") -> bytes:
    """The audio the fake makes of `text` (not playable: deterministic bytes after the format's magic)."""
    size = SPEECH_BYTES_PER_CHAR * len(text)
    seed = hashlib.sha256(f"{response_format}:{text}".encode()).digest()
    return SPEECH_FORMATS[response_format][1] + (seed * (size // len(seed) + 1))[:size]


def wav_seconds(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data)) as reader:
            return reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        raise Invalid(f"Invalid file format. Supported formats: {SUPPORTED}", "file") from None


def read_form(request: Request) -> tuple[dict[str, list[str]], dict[str, bytes]]:
    """(fields, files) of a multipart/form-data body."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != "multipart/form-data" or not options.get("boundary"):
        raise Invalid("Invalid Content-Type header: expected multipart/form-data")
    fields: dict[str, list[str]] = {}
    files: dict[str, bytes] = {}
    segment: MultipartSegment | None = None
    chunks: list[bytes] = []
    try:
        with PushMultipartParser(options["boundary"], len(request.body)) as parser:
            for event in parser.parse(request.body):
                if isinstance(event, MultipartSegment):
                    segment, chunks = event, []
                elif event is None and segment is not None:
                    data = b"".join(chunks)
                    if segment.filename is not None:
                        files[segment.name or ""] = data
                    else:
                        fields.setdefault(segment.name or "", []).append(data.decode())
                elif event is not None:
                    chunks.append(bytes(event))
    except (MultipartError, UnicodeDecodeError) as exc:
        raise Invalid(f"Could not parse multipart form: {exc}") from None
    return fields, files


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3600000:02d}:{millis // 60000 % 60:02d}:{millis // 1000 % 60:02d}{separator}{millis % 1000:03d}"


class FakeAudio:
    def __init__(self, faults: dict[str, Fault], by_model: dict[str, int], chunk_delay_s: float) -> None:
        self.faults = faults
        self.by_model = by_model
        self.chunk_delay_s = chunk_delay_s

    async def handle(self, request: Request, path: str, deployment: str | None) -> Response | StreamResponse:
        try:
            if path in ("/audio/transcriptions", "/audio/translations"):
                return self._transcribe(request, path.rsplit("/", 1)[1], deployment)
            if path == "/audio/speech":
                return self._speech(request, deployment)
        except Invalid as exc:
            return Response(400, error_body(str(exc), "invalid_request_error", exc.param), JSON_HEADERS)
        return Response(404, error_body(f"Invalid URL (POST {request.path})", "invalid_request_error"), JSON_HEADERS)

    def _fault(self, model: str) -> Response | None:
        self.by_model[model] = self.by_model.get(model, 0) + 1
        fault = self.faults.get(model)
        if fault is None:
            return None
        status, message, type_, param, code, headers = fault
        return Response(status, error_body(message, type_, param, code), {**JSON_HEADERS, **headers})

    # ---- transcriptions and translations ----------------------------------------------------------

    def _transcribe(self, request: Request, task: str, deployment: str | None) -> Response | StreamResponse:
        fields, files = read_form(request)
        model = deployment or (fields.get("model") or [""])[0]
        if not model:
            raise Invalid("you must provide a model parameter", "model")
        if "file" not in files:
            raise Invalid("you must provide a file parameter", "file")
        fault = self._fault(model)
        if fault is not None:
            return fault
        seconds = wav_seconds(files["file"])
        response_format = (fields.get("response_format") or ["json"])[0]
        if response_format not in TRANSCRIPT_FORMATS:
            raise Invalid(f"Invalid response_format: {response_format}", "response_format")
        by_tokens = "transcribe" in model
        if by_tokens and response_format not in ("json", "text"):
            raise Invalid(
                f"response_format '{response_format}' is not compatible with model '{model}'. Use 'json' or 'text' instead.",
                "response_format",
            )
        text = transcript_text(seconds)
        prompt = (fields.get("prompt") or [""])[0]
        usage: dict[str, Any] | None = None
        if task == "transcriptions":
            usage = {"type": "duration", "seconds": math.ceil(seconds)}
            if by_tokens:
                audio, prompt_words, words = math.ceil(seconds * AUDIO_TOKENS_PER_SECOND), len(prompt.split()), len(text.split())
                usage = {
                    "type": "tokens",
                    "input_tokens": audio + prompt_words,
                    "input_token_details": {"text_tokens": prompt_words, "audio_tokens": audio},
                    "output_tokens": words,
                    "total_tokens": audio + prompt_words + words,
                }
            if by_tokens and (fields.get("stream") or ["false"])[0] == "true":
                return StreamResponse(self._transcript_events(model, text, usage), headers=SSE_HEADERS)
        return self._transcript(task, response_format, text, seconds, usage, fields)

    def _transcript(
        self, task: str, response_format: str, text: str, seconds: float, usage: dict | None, fields: dict[str, list[str]]
    ) -> Response:
        if response_format == "text":
            return Response(200, (text + "\n").encode(), TEXT_HEADERS)
        if response_format in ("srt", "vtt"):
            separator = "," if response_format == "srt" else "."
            cue = f"{_timestamp(0, separator)} --> {_timestamp(seconds, separator)}\n{text}\n\n"
            body = f"1\n{cue}" if response_format == "srt" else f"WEBVTT\n\n{cue}"
            return Response(200, body.encode(), TEXT_HEADERS)
        out: dict[str, Any] = {"text": text}
        if response_format == "verbose_json":
            segment = {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": seconds,
                "text": text,
                "tokens": list(range(len(text.split()))),
                "temperature": 0.0,
                "avg_logprob": -0.1,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
            language = (fields.get("language") or ["english"])[0] if task == "transcriptions" else "english"
            out = {"task": task[:-6] if task == "transcriptions" else "translate", "language": language, "duration": seconds}
            out |= {"text": text, "segments": [segment]}
            if "word" in fields.get("timestamp_granularities[]", []):
                words = text.split()
                step = seconds / len(words)
                out["words"] = [{"word": w, "start": i * step, "end": (i + 1) * step} for i, w in enumerate(words)]
        if usage is not None:
            out["usage"] = usage
        return Response(200, encode_json(out), JSON_HEADERS)

    async def _transcript_events(self, model: str, text: str, usage: dict) -> AsyncIterator[bytes]:
        for word in text.split():
            await self._pause(model)
            yield b"data: " + encode_json({"type": "transcript.text.delta", "delta": word + " "}) + b"\n\n"
        yield b"data: " + encode_json({"type": "transcript.text.done", "text": text, "usage": usage}) + b"\n\n"

    # ---- speech ---------------------------------------------------------------------------------------

    def _speech(self, request: Request, deployment: str | None) -> Response | StreamResponse:
        try:
            body = decode_json(request.body)
        except ValueError:
            raise Invalid("We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise Invalid("The request body must be a JSON object.")
        model = deployment or body.get("model")
        if not isinstance(model, str) or not model:
            raise Invalid("you must provide a model parameter", "model")
        text = body.get("input")
        if not isinstance(text, str) or not text:
            raise Invalid("you must provide an input parameter", "input")
        if not body.get("voice"):
            raise Invalid("you must provide a voice parameter", "voice")
        response_format = body.get("response_format") or "mp3"
        if response_format not in SPEECH_FORMATS:
            raise Invalid(f"Invalid response_format: {response_format}", "response_format")
        fault = self._fault(model)
        if fault is not None:
            return fault
        audio = speech_audio(text, response_format)
        if body.get("stream_format") == "sse":
            if model.startswith("tts-1"):
                raise Invalid(f"stream_format 'sse' is not supported for model '{model}'.", "stream_format")
            usage = {"input_tokens": len(text.split()), "output_tokens": len(audio) // SPEECH_BYTES_PER_CHAR}
            usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
            return StreamResponse(self._speech_events(model, audio, usage), headers=SSE_HEADERS)
        content_type = SPEECH_FORMATS[response_format][0]
        return StreamResponse(self._speech_chunks(model, audio), headers={"Content-Type": content_type})

    async def _pause(self, model: str) -> None:
        delay_ms = suffix_ms(model, "fake-chunk-delay-")
        delay_s = self.chunk_delay_s if delay_ms is None else delay_ms / 1000
        if delay_s:
            await asyncio.sleep(delay_s)

    async def _speech_chunks(self, model: str, audio: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(audio), SPEECH_CHUNK):
            if start:
                await self._pause(model)
            yield audio[start : start + SPEECH_CHUNK]

    async def _speech_events(self, model: str, audio: bytes, usage: dict) -> AsyncIterator[bytes]:
        for start in range(0, len(audio), SPEECH_CHUNK):
            if start:
                await self._pause(model)
            delta = base64.b64encode(audio[start : start + SPEECH_CHUNK]).decode()
            yield b"data: " + encode_json({"type": "speech.audio.delta", "audio": delta}) + b"\n\n"
        yield b"data: " + encode_json({"type": "speech.audio.done", "usage": usage}) + b"\n\n"
