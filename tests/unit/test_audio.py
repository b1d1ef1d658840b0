"""The audio routes' parts without processes: the duration read from each audio format, the
multipart form read once and written out again, the upload's checks, and what is metered."""

from __future__ import annotations

import struct

import httpx
import msgspec
import pytest

from gateway.audio.duration import UnreadableAudio, audio_seconds, sniff
from gateway.audio.form import parse_form
from gateway.audio.routes import AUDIO_TOKENS_PER_SECOND, TRANSCRIPTIONS
from gateway.audio.upload import MAX_FILE_BYTES, read_upload
from gateway.budgets import WorstCase, worst_case_cost
from gateway.errors import GatewayError
from gateway.routes import Incoming
from llmgw.config import Deployment
from llmgw.contracts import AudioTask, AudioUpload, Units, UploadPart, decode_audio_upload, encode_audio_upload
from llmgw.prices import Price
from tests.audio_files import flac_file, mp3_file, mp4_audio, ogg_opus, wav_float, wav_tone, webm_file
from workers.http_client import UpstreamClient
from workers.providers.answers import NativeHead
from workers.providers.multipart import multipart_body
from workers.providers.openai_audio import (
    MAX_PIECE,
    MAX_WHOLE,
    _AudioUsage,
    bills_tokens,
    speech_usage,
    transcription_items,
    transcription_usage,
)
from workers.usage import Usage

pytestmark = pytest.mark.unit


# ---- durations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "seconds"),
    [
        ("wav", wav_tone(2.5), 2.5),
        ("wav", wav_tone(1.25, rate=8000, width=1), 1.25),
        ("wav", wav_float(3.0), 3.0),  # float samples: read through mutagen
        ("flac", flac_file(4.0), 4.0),
        ("mp3", mp3_file(5.0), 5.0),
        ("mp3", b"ID3\x04\x00\x00\x00\x00\x00\x0a" + b"\0" * 10 + mp3_file(3.0), 3.0),  # behind an ID3 tag
        ("ogg", ogg_opus(6.5), 6.5),
        ("mp4", mp4_audio(7.25), 7.25),
        ("webm", webm_file(8.5), 8.5),
        ("webm", webm_file(2.5, with_duration=False), 2.5),  # a browser recording: from its last block
    ],
)
def test_the_duration_is_read_from_the_file(kind, data, seconds):
    assert sniff(data) == kind
    assert audio_seconds(data) == pytest.approx(seconds, abs=0.05)


def test_a_recording_is_measured_from_its_last_cluster_even_when_frames_spell_a_clusters_id():
    decoy = b"\x1f\x43\xb6\x75\x81\xe7\x81\x05"  # a cluster's ID, size and timestamp, inside audio frames
    assert audio_seconds(webm_file(3.0, with_duration=False, frame=decoy + b"\xa3\x81")) == pytest.approx(3.0)  # walked
    recording = webm_file(61.0, with_duration=False)
    assert audio_seconds(recording[:-4]) == pytest.approx(61.0)  # cut inside its last frame
    cues = b"\x1c\x53\xbb\x6b\x82\xbb\x80"  # a Cues element after the clusters ends the last one
    assert audio_seconds(recording + cues) == pytest.approx(61.0)


def test_a_wav_header_claiming_more_than_the_file_holds_counts_only_what_is_there():
    data = bytearray(wav_tone(2.0, rate=8000))
    data_at = data.index(b"data")
    data[data_at + 4 : data_at + 8] = struct.pack("<I", 0xFFFFFFF0)  # a length written before it was known
    assert audio_seconds(bytes(data)) == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"plain text, not audio",
        wav_tone(1.0)[:30],  # a WAV cut inside its header
        b"RIFF\0\0\0\0WAVEjunk",
        b"\xff\xfb\x90\x00" + b"\x13" * 40,  # an MPEG frame header and nothing after it
        b"OggS" + b"\0" * 60,
        b"fLaC",
        webm_file(1.0)[:20],
        flac_file(0.0),  # no audio at all
        flac_file(30 * 3600.0, rate=8000),  # a header claiming more than a day
    ],
)
def test_a_file_whose_audio_cannot_be_read_is_refused(data):
    with pytest.raises(UnreadableAudio):
        audio_seconds(data)


# ---- the form -----------------------------------------------------------------------------------------


def form(fields: dict | None = None, files: dict | None = None) -> tuple[str, bytes]:
    request = httpx.Request("POST", "http://upstream/", data=fields or {}, files=files or {})
    return request.headers["content-type"], request.read()


def test_a_form_is_read_into_its_parts_in_order():
    content_type, body = form(
        {"model": "whisper-1", "timestamp_granularities[]": ["word", "segment"]},
        {"file": ('a b".wav', b"RIFF\r\n--", "audio/wav")},
    )
    parts = parse_form(content_type, body)
    assert [(p.name, p.data) for p in parts] == [
        ("model", b"whisper-1"),
        ("timestamp_granularities[]", b"word"),
        ("timestamp_granularities[]", b"segment"),
        ("file", b"RIFF\r\n--"),
    ]
    assert (parts[-1].filename, parts[-1].content_type) == ('a b".wav', "audio/wav")


@pytest.mark.parametrize(
    ("content_type", "body", "says"),
    [
        (None, b"x", "no Content-Type"),
        ("application/json", b"{}", "multipart/form-data"),
        ("multipart/form-data", b"x", "no boundary"),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nunfinished',
            "could not be read",
        ),
        ("multipart/form-data; boundary=b", b"no boundary anywhere", "could not be read"),
    ],
)
def test_a_body_that_is_no_form_is_a_400(content_type, body, says):
    with pytest.raises(GatewayError) as refused:
        parse_form(content_type, body)
    assert refused.value.status == 400 and says in refused.value.message


def upload(fields: dict, files: dict | None = None, task: str = AudioTask.TRANSCRIPTIONS):
    content_type, body = form(fields, {"file": ("tone.wav", wav_tone(1.5))} if files is None else files)
    return read_upload(task, content_type, body)


def test_an_upload_keeps_every_part_but_the_model_and_knows_its_duration():
    read = upload({"model": " whisper-1 ", "response_format": "verbose_json", "prompt": "hello there", "language": "de"})
    assert (read.upload.model, read.upload.response_format, read.upload.duration, read.prompt) == (
        "whisper-1",
        "verbose_json",
        1.5,
        "hello there",
    )
    assert [p.name for p in read.upload.parts] == ["response_format", "prompt", "language", "file"]
    assert decode_audio_upload(encode_audio_upload(read.upload)) == read.upload
    assert upload({"model": "m", "stream": "true"}).upload.stream
    assert not upload({"model": "m", "stream": "true"}, task=AudioTask.TRANSLATIONS).upload.stream  # translations do not stream


@pytest.mark.parametrize(
    ("fields", "files", "status", "param"),
    [
        ({}, None, 400, "model"),
        ({"model": "m"}, {"notes": ("notes.txt", b"x")}, 400, "file"),
        ({"model": "m"}, {"file": ("empty.wav", b"")}, 400, "file"),
        ({"model": "m"}, {"file": ("a.wav", b"not audio")}, 400, "file"),
        ({"model": "m"}, {"file": ("big.wav", b"\0" * (MAX_FILE_BYTES + 1))}, 413, "file"),
        ({"model": ["a", "b"]}, None, 400, "model"),
        ({"model": "m", "response_format": "xml"}, None, 400, "response_format"),
        ({"model": "m", "temperature": "1.5"}, None, 400, "temperature"),
        ({"model": "m", "temperature": "warm"}, None, 400, "temperature"),
        ({"model": "m", "timestamp_granularities[]": "sentence"}, None, 400, "timestamp_granularities"),
        ({"model": "m", "stream": "maybe"}, None, 400, "stream"),
    ],
)
def test_an_upload_that_does_not_fit_names_the_field(fields, files, status, param):
    with pytest.raises(GatewayError) as refused:
        upload(fields, files)
    assert (refused.value.status, refused.value.param) == (status, param)


def test_diarized_json_is_for_transcriptions_only():
    assert upload({"model": "m", "response_format": "diarized_json"}).upload.response_format == "diarized_json"
    with pytest.raises(GatewayError):
        upload({"model": "m", "response_format": "diarized_json"}, task=AudioTask.TRANSLATIONS)


# ---- the worker's side --------------------------------------------------------------------------------------


def test_the_upload_is_written_out_again_with_the_upstreams_model_and_the_files_bytes_untouched():
    audio = wav_tone(0.5) + b"\r\n--not-the-boundary--\r\n"
    parts = [
        UploadPart("language", b"en"),
        UploadPart("file", audio, 'we"ird\r\nname.wav', "audio/wav"),
        UploadPart("timestamp_granularities[]", b"word"),
    ]
    content_type, body = multipart_body(AudioUpload(task="transcriptions", model="alias", parts=parts, duration=0.5), "whisper-1")
    assert b'filename="we%22ird%0D%0Aname.wav"' in body  # quotes and line breaks escaped as browsers do
    again = parse_form(content_type, body)
    assert [(p.name, p.data) for p in again] == [("model", b"whisper-1")] + [(p.name, p.data) for p in parts]
    assert again[2].filename == parts[1].filename and again[2].content_type == "audio/wav"  # (escaped, and read back)


def deployment(**fields: object) -> Deployment:
    return Deployment(id="d", model_name="m", provider="openai", upstream_model="no-such-model-anywhere", **fields)  # type: ignore[arg-type]


def test_tokens_are_metered_when_the_model_is_priced_by_tokens_else_seconds_or_characters():
    by_second = deployment(unit_prices=(("input_cost_per_second", 0.0001),))
    by_token = deployment(
        input_cost_per_token=6e-06, output_cost_per_token=1e-05, unit_prices=(("input_cost_per_second", 0.0001),)
    )
    by_character = deployment(unit_prices=(("input_cost_per_character", 1.5e-05),))
    model = "no-such-model-anywhere"
    assert not bills_tokens(by_second, model) and not bills_tokens(by_character, model)
    assert bills_tokens(by_token, model) and bills_tokens(deployment(), model)  # (no price at all: tokens, if any)

    file = AudioUpload(task="transcriptions", model="m", parts=[], duration=2.5)
    tokens = _AudioUsage(type="tokens", input_tokens=25, output_tokens=3)
    assert transcription_usage(tokens, None, file, True) == Usage(prompt_tokens=25, completion_tokens=3)
    assert transcription_usage(tokens, None, file, False) == Usage(units=Units(audio_seconds=2.5), estimated=True)
    assert transcription_usage(_AudioUsage(type="duration", seconds=3), 2.5, file, True) == Usage(units=Units(audio_seconds=3))
    assert transcription_usage(None, 2.4, file, True) == Usage(units=Units(audio_seconds=2.4))  # verbose_json's duration
    assert transcription_usage(None, None, file, True) == Usage(units=Units(audio_seconds=2.5), estimated=True)

    spoken = _AudioUsage(input_tokens=4, output_tokens=16)  # speech's events carry an untyped usage
    assert speech_usage(spoken, 11, True) == Usage(prompt_tokens=4, completion_tokens=16)
    assert speech_usage(spoken, 11, False) == speech_usage(None, 11, True) == Usage(units=Units(characters=11), estimated=True)


async def relayed(content: bytes, content_type: str, response_format: str) -> list:
    upload = AudioUpload(task="transcriptions", model="m", parts=[], duration=2.5, response_format=response_format)
    resp = httpx.Response(200, headers={"content-type": content_type}, content=content)
    return [item async for item in transcription_items(UpstreamClient, resp, upload, True)]  # type: ignore[arg-type]


async def test_a_transcript_goes_back_whole_and_a_very_long_one_in_pieces():
    short = b'{"text": "w0 w1 w2", "usage": {"type": "duration", "seconds": 3}}'
    head, body, usage = await relayed(short, "application/json", "json")
    assert head == NativeHead(200, [("content-type", "application/json")], stream=False)
    assert (body, usage) == (short, Usage(units=Units(audio_seconds=3)))

    words = [{"word": f"w{i}", "start": i, "end": i + 1} for i in range(8000)]
    long = msgspec.json.encode({"text": "...", "duration": 8000.0, "words": words})
    assert len(long) > MAX_WHOLE
    head, *pieces, usage = await relayed(long, "application/json", "verbose_json")
    assert head.stream and len(pieces) > 1 and all(len(p) <= MAX_PIECE for p in pieces)
    assert b"".join(pieces) == long and usage == Usage(units=Units(audio_seconds=8000.0))

    _, text, usage = await relayed(b"w0 w1 w2\n", "text/plain; charset=utf-8", "text")
    assert text == b"w0 w1 w2\n" and usage == Usage(units=Units(audio_seconds=2.5), estimated=True)


def test_an_uploads_worst_case_is_its_seconds_and_their_tokens_not_its_size():
    content_type, body = form({"model": "transcribe", "prompt": "names: Ana"}, {"file": ("long.wav", wav_tone(70.3, rate=8000))})
    incoming = Incoming(None, None, len(body))
    incoming.content_type = content_type
    call = TRANSCRIPTIONS.parse({"headers": []}, incoming, body, None)  # type: ignore[arg-type]  # (parse needs no edge)
    assert call.units == Units(audio_seconds=71.0)  # whole seconds, as providers bill
    assert call.prompt_bytes == 71 * AUDIO_TOKENS_PER_SECOND + len("names: Ana")
    assert call.prompt_bytes < len(body) // 100  # (the body's 1.1 MB would be as many tokens)
    price = Price(input=6e-06, output=1e-05, cached_input=6e-06, max_output_tokens=2000, audio_second=0.0001)
    worst, _ = worst_case_cost(price, WorstCase(call.prompt_bytes, call.max_tokens, call.n, call.units))
    assert worst == pytest.approx(call.prompt_bytes * 6e-06 + 2000 * 1e-05 + 71 * 0.0001)
