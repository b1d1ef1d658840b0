"""A transcription or translation upload, checked: the form's fields as OpenAI's API reference
defines them (https://platform.openai.com/docs/api-reference/audio/createTranscription and
/createTranslation), the file's size and the duration of its audio.

Only the fields the gateway relies on are checked (`file`, `model`, `response_format`,
`temperature`, `timestamp_granularities[]`, `stream`); every other field goes on to the
provider as the client sent it.
"""

from __future__ import annotations

from gateway.audio.duration import SUPPORTED_FORMATS, UnreadableAudio, audio_seconds
from gateway.audio.form import bad_form, parse_form, text_of
from gateway.errors import GatewayError
from llmgw.contracts import AudioTask, AudioUpload, ErrorCode, ErrorType, UploadPart

MAX_FILE_BYTES = 25 * 1024 * 1024  # OpenAI's limit for an audio file
FORM_OVERHEAD_BYTES = 1024 * 1024  # room for the other fields and the multipart framing
MAX_BODY_BYTES = MAX_FILE_BYTES + FORM_OVERHEAD_BYTES

RESPONSE_FORMATS = {
    AudioTask.TRANSCRIPTIONS: ("json", "text", "srt", "verbose_json", "vtt", "diarized_json"),
    AudioTask.TRANSLATIONS: ("json", "text", "srt", "verbose_json", "vtt"),
}
TIMESTAMP_GRANULARITIES = ("word", "segment")
SINGLE_FIELDS = ("model", "response_format", "temperature", "stream", "language", "prompt")


class Upload:
    """An upload as the edge read it: what goes to the worker and what its worst case needs."""

    __slots__ = ("prompt", "upload")

    def __init__(self, upload: AudioUpload, prompt: str) -> None:
        self.upload = upload
        self.prompt = prompt


def _single(parts: list[UploadPart], name: str) -> UploadPart | None:
    found = [p for p in parts if p.name == name]
    if len(found) > 1:
        raise bad_form(f"The field `{name}` was sent {len(found)} times; send it once.", name)
    return found[0] if found else None


def _file(parts: list[UploadPart]) -> UploadPart:
    file = _single(parts, "file")
    if file is None:
        raise bad_form("The form has no `file`: attach the audio file as the `file` field.", "file")
    if len(file.data) > MAX_FILE_BYTES:
        raise GatewayError(
            413,
            f"The audio file is {len(file.data)} bytes; at most {MAX_FILE_BYTES} bytes (25 MB) are accepted.",
            ErrorType.INVALID_REQUEST,
            ErrorCode.PAYLOAD_TOO_LARGE,
            "file",
        )
    if not file.data:
        raise bad_form("The audio file is empty.", "file")
    return file


def _temperature(part: UploadPart | None) -> None:
    if part is None:
        return
    try:
        value = float(text_of(part))
    except ValueError:
        raise bad_form("`temperature` must be a number between 0 and 1.", "temperature") from None
    if not 0.0 <= value <= 1.0:
        raise bad_form(f"`temperature` must be between 0 and 1, got {value:g}.", "temperature")


def _stream(part: UploadPart | None) -> bool:
    if part is None:
        return False
    value = text_of(part).strip().lower()
    if value not in ("true", "false"):
        raise bad_form("`stream` must be true or false.", "stream")
    return value == "true"


def read_upload(task: str, content_type: str | None, body: bytes) -> Upload:
    """The checked upload (a 400 naming the field that is wrong, 413 for a file too large)."""
    parts = parse_form(content_type, body)
    for name in SINGLE_FIELDS:
        _single(parts, name)
    model_part = _single(parts, "model")
    model = text_of(model_part).strip() if model_part is not None else ""
    if not model:
        raise bad_form("The form has no `model`: name the model as the `model` field.", "model")
    file = _file(parts)
    formats = RESPONSE_FORMATS[task]
    format_part = _single(parts, "response_format")
    response_format = text_of(format_part).strip() if format_part is not None else "json"
    if response_format not in formats:
        raise bad_form(f"`response_format` must be one of {', '.join(formats)}; got {response_format!r}.", "response_format")
    _temperature(_single(parts, "temperature"))
    for part in parts:
        if part.name in ("timestamp_granularities[]", "timestamp_granularities") and text_of(part) not in TIMESTAMP_GRANULARITIES:
            raise bad_form("`timestamp_granularities[]` must be word or segment.", "timestamp_granularities")
    stream = _stream(_single(parts, "stream")) and task == AudioTask.TRANSCRIPTIONS
    try:
        seconds = audio_seconds(file.data)
    except UnreadableAudio as exc:
        raise bad_form(f"Invalid file format: {exc}. Supported formats: {', '.join(SUPPORTED_FORMATS)}.", "file") from None
    prompt_part = _single(parts, "prompt")
    upload = AudioUpload(
        task=task,
        model=model,
        parts=[p for p in parts if p.name != "model"],
        duration=seconds,
        response_format=response_format,
        stream=stream,
    )
    return Upload(upload, text_of(prompt_part) if prompt_part is not None else "")
