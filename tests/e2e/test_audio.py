"""The audio routes end to end, driven by the official `openai` SDK: transcriptions and
translations (multipart uploads of WAV files the tests make, every response format, a body larger
than one bus message, a streamed transcription), speech streamed back to a file chunk by chunk,
the same through an Azure OpenAI deployment, and every request's one usage row: seconds of audio
x the price per second, characters x the price per character, or tokens where the model is billed
by the tokens the provider reports."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

from bench.fake_openai_audio import AUDIO_TOKENS_PER_SECOND, speech_audio, transcript_text
from tests.audio_files import wav_tone
from tests.e2e.stack import MASTER_KEY, Stack

pytestmark = pytest.mark.e2e

PER_SECOND = 0.0001  # USD a second of audio ($0.006 a minute, whisper-1's list price)
PER_CHARACTER = 1.5e-05  # USD a character ($15 per 1M, tts-1's)
TRANSCRIBE_IN, TRANSCRIBE_OUT = 6e-06, 1e-05  # USD a token (gpt-4o-transcribe's audio input, text output)
TTS_IN, TTS_OUT = 6e-07, 1.2e-05  # USD a token (gpt-4o-mini-tts)
AZURE_VERSION = "2024-10-21"
TONE = wav_tone(2.5)  # 2.5 s: the provider reports 3 (it bills whole seconds), the file says 2.5


def config(base: str, root: str) -> str:
    def deployment(name: str, model: str, *prices: str, api_base: str = base, azure: bool = False) -> list[str]:
        lines = [f"  - model_name: {name}", "    params:", f"      model: {model}", f"      api_base: {api_base}"]
        lines += ["      api_key: os.environ/E2E_UPSTREAM_KEY", *[f"      {p}" for p in prices]]
        return lines + ([f"      api_version: {AZURE_VERSION}"] if azure else [])

    per_second, per_character = f"input_cost_per_second: {PER_SECOND}", f"input_cost_per_character: {PER_CHARACTER}"
    lines = [
        "model_list:",
        *deployment("whisper", "openai/whisper-1", per_second),
        *deployment(
            "transcribe",
            "openai/gpt-4o-transcribe",
            per_second,
            f"input_cost_per_token: {TRANSCRIBE_IN}",
            f"output_cost_per_token: {TRANSCRIBE_OUT}",
        ),
        *deployment("tts", "openai/tts-1", per_character),
        *deployment("tts-slow", "openai/fake-chunk-delay-25", per_character),
        *deployment(
            "tts-tokens", "openai/gpt-4o-mini-tts", f"input_cost_per_token: {TTS_IN}", f"output_cost_per_token: {TTS_OUT}"
        ),
        *deployment("whisper-refusing", "openai/fake-error-400", per_second),
        *deployment("whisper-azure", "azure/my-whisper", per_second, api_base=root, azure=True),
        *deployment("tts-azure", "azure/my-tts", per_character, api_base=root, azure=True),
        "general_settings:",
        "  master_key: os.environ/E2E_MASTER_KEY",
        "",
    ]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    s = Stack(
        tmp_path_factory.mktemp("stack"), nats_server.url, "e2eaudio", upstream, {}, config(upstream.base_url, upstream.root_url)
    ).start()
    yield s
    s.stop()


def assert_row(row: dict, *, seconds: float = 0, characters: int = 0, tokens: tuple[int, int] = (0, 0), cost: float) -> None:
    assert row["status"] == "success" and row["http_status"] == 200, row
    assert (row["audio_seconds"], row["characters"]) == (pytest.approx(seconds), characters), row
    assert (row["prompt_tokens"], row["completion_tokens"]) == tokens, row
    assert row["cost"] == pytest.approx(cost, rel=1e-9, abs=1e-15), row
    assert row["cost_known"] in (1, True), row


# ---- transcriptions and translations ----------------------------------------------------------------


def test_a_transcription_in_json_is_metered_by_the_seconds_the_provider_reports(stack):
    raw = stack.client().audio.transcriptions.with_raw_response.create(model="whisper", file=("tone.wav", TONE, "audio/wav"))
    assert raw.headers["content-type"].startswith("application/json")
    transcript = raw.parse()
    assert transcript.text == transcript_text(2.5) == "w0 w1 w2"
    assert transcript.usage.type == "duration" and transcript.usage.seconds == 3
    row = stack.usage_rows([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
    assert_row(row, seconds=3, cost=3 * PER_SECOND)
    assert (row["operation"], row["upstream_model"], row["usage_source"]) == ("transcription", "whisper-1", "provider")


def test_a_transcription_as_text_is_metered_by_the_files_duration(stack):
    raw = stack.client().audio.transcriptions.with_raw_response.create(
        model="whisper", file=("tone.wav", TONE), response_format="text"
    )
    assert raw.headers["content-type"].startswith("text/plain")
    assert raw.parse().strip() == "w0 w1 w2"
    row = stack.usage_rows([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
    assert_row(row, seconds=2.5, cost=2.5 * PER_SECOND)  # the fake says nothing: the duration the edge read
    assert row["usage_source"] == "estimated"


def test_verbose_json_with_word_timestamps_and_subtitles(stack):
    client = stack.client()
    verbose = client.audio.transcriptions.create(
        model="whisper",
        file=("tone.wav", TONE),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en",
        prompt="a tone",
        temperature=0.2,
    )
    assert verbose.duration == 2.5 and verbose.text == "w0 w1 w2" and verbose.language == "en"
    assert [w.word for w in verbose.words] == ["w0", "w1", "w2"] and len(verbose.segments) == 1
    srt = client.audio.transcriptions.create(model="whisper", file=("tone.wav", TONE), response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\nw0 w1 w2")
    vtt = client.audio.transcriptions.create(model="whisper", file=("tone.wav", TONE), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nw0 w1 w2")


def test_a_model_billed_by_tokens_is_metered_by_its_tokens(stack):
    raw = stack.client().audio.transcriptions.with_raw_response.create(
        model="transcribe", file=("tone.wav", TONE), prompt="three short words"
    )
    usage = raw.parse().usage
    audio_tokens = math.ceil(2.5 * AUDIO_TOKENS_PER_SECOND)
    assert (usage.type, usage.input_tokens, usage.output_tokens) == ("tokens", audio_tokens + 3, 3)
    row = stack.usage_rows([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
    assert_row(row, tokens=(audio_tokens + 3, 3), cost=(audio_tokens + 3) * TRANSCRIBE_IN + 3 * TRANSCRIBE_OUT)


def test_a_streamed_transcription_relays_the_providers_events_and_meters_their_tokens(stack):
    raw = stack.client().audio.transcriptions.with_raw_response.create(model="transcribe", file=("tone.wav", TONE), stream=True)
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = list(raw.parse())
    assert [e.type for e in events] == ["transcript.text.delta"] * 3 + ["transcript.text.done"]
    assert events[-1].text == "w0 w1 w2"
    audio_tokens = math.ceil(2.5 * AUDIO_TOKENS_PER_SECOND)
    row = stack.usage_rows([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
    assert_row(row, tokens=(audio_tokens, 3), cost=audio_tokens * TRANSCRIBE_IN + 3 * TRANSCRIBE_OUT)
    assert row["stream"] in (1, True)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # (the SDK marks translations deprecated)
def test_translations_whole_and_verbose(stack):
    client = stack.client()
    raw = client.audio.translations.with_raw_response.create(model="whisper", file=("tone.wav", TONE))
    assert raw.parse().text == "w0 w1 w2"
    verbose = client.audio.translations.with_raw_response.create(
        model="whisper", file=("tone.wav", TONE), response_format="verbose_json"
    )
    assert verbose.parse().duration == 2.5
    rows = stack.usage_rows([raw.headers["x-request-id"], verbose.headers["x-request-id"]])
    # Translations report no usage: the file's duration, then verbose_json's `duration`.
    assert_row(rows[raw.headers["x-request-id"]], seconds=2.5, cost=2.5 * PER_SECOND)
    assert_row(rows[verbose.headers["x-request-id"]], seconds=2.5, cost=2.5 * PER_SECOND)
    assert rows[verbose.headers["x-request-id"]]["usage_source"] == "provider"


def test_an_upload_larger_than_a_bus_message_is_carried_and_metered(stack):
    long_tone = wav_tone(70.0)  # 2.24 MB: more than NATS's 1 MB message limit
    assert len(long_tone) > 2_000_000
    raw = stack.client().audio.transcriptions.with_raw_response.create(
        model="whisper", file=("long.wav", long_tone), response_format="text"
    )
    assert raw.parse().split() == [f"w{i}" for i in range(70)]
    row = stack.usage_rows([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
    assert_row(row, seconds=70, cost=70 * PER_SECOND)


def test_the_path_without_v1_and_under_openai(stack):
    for base in (stack.base_url, f"{stack.base_url}/openai"):
        client = openai.OpenAI(base_url=base, api_key=MASTER_KEY, max_retries=0)
        assert client.audio.transcriptions.create(model="whisper", file=("tone.wav", TONE)).text == "w0 w1 w2"


# ---- speech --------------------------------------------------------------------------------------------


def test_speech_streams_to_a_file_as_it_arrives_and_is_metered_by_characters(stack, tmp_path):
    text = "A long sentence to speak. " * 40  # 1040 characters: 65 KB of audio in 4 KB chunks
    with stack.client().audio.speech.with_streaming_response.create(model="tts-slow", voice="alloy", input=text) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        request_id = response.headers["x-request-id"]
        pieces = list(response.iter_bytes())
    assert b"".join(pieces) == speech_audio(text, "mp3")
    assert len(pieces) > 1  # relayed as the upstream sent it, not gathered first
    row = stack.usage_rows([request_id])[request_id]
    assert_row(row, characters=len(text), cost=len(text) * PER_CHARACTER)
    assert (row["operation"], row["stream"]) == ("speech", 1)

    path = tmp_path / "speech.wav"
    with stack.client().audio.speech.with_streaming_response.create(
        model="tts", voice="nova", input="Hello there", response_format="wav", speed=1.5
    ) as response:
        response.stream_to_file(path)
    assert path.read_bytes() == speech_audio("Hello there", "wav")


def test_speech_events_are_metered_by_the_tokens_they_report(stack):
    text = "Say it as events"
    with stack.client().audio.speech.with_streaming_response.create(
        model="tts-tokens", voice="coral", input=text, stream_format="sse", instructions="calmly"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        request_id = response.headers["x-request-id"]
        body = response.read()
    assert b'"type":"speech.audio.done"' in body
    output_tokens = len(speech_audio(text)) // 64
    row = stack.usage_rows([request_id])[request_id]
    assert_row(row, tokens=(4, output_tokens), cost=4 * TTS_IN + output_tokens * TTS_OUT)


# ---- Azure OpenAI -----------------------------------------------------------------------------------------


def test_an_azure_deployment_transcribes_and_speaks_at_its_deployment_urls(stack, upstream):
    client = stack.client()
    raw = client.audio.transcriptions.with_raw_response.create(model="whisper-azure", file=("tone.wav", TONE))
    assert raw.parse().text == "w0 w1 w2"
    with client.audio.speech.with_streaming_response.create(model="tts-azure", voice="alloy", input="Azure speaks") as spoken:
        speech_id = spoken.headers["x-request-id"]
        assert spoken.read() == speech_audio("Azure speaks")
    assert {"my-whisper", "my-tts"} <= set(upstream.stats()["by_model"])  # the deployments from the URLs
    rows = stack.usage_rows([raw.headers["x-request-id"], speech_id])
    assert_row(rows[raw.headers["x-request-id"]], seconds=3, cost=3 * PER_SECOND)
    assert_row(rows[speech_id], characters=len("Azure speaks"), cost=len("Azure speaks") * PER_CHARACTER)
    assert {rows[raw.headers["x-request-id"]]["provider"], rows[speech_id]["provider"]} == {"azure"}


# ---- budgets ---------------------------------------------------------------------------------------------


def test_a_budget_pays_for_the_seconds_it_can_and_refuses_the_rest(stack):
    resp = httpx.post(
        f"{stack.base_url}/key/generate",
        json={"max_budget": 5 * PER_SECOND, "models": ["whisper"]},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
    )
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=resp.json()["key"], max_retries=0)
    first = client.audio.transcriptions.with_raw_response.create(model="whisper", file=("tone.wav", TONE))
    assert first.status_code == 200  # 3 s of the budget's 5
    with pytest.raises(openai.RateLimitError) as refused:
        client.audio.transcriptions.create(model="whisper", file=("tone.wav", TONE))  # 3 more do not fit
    assert refused.value.code == "budget_exceeded"
    rows = stack.usage_rows([first.headers["x-request-id"], refused.value.response.headers["x-request-id"]])
    assert rows[first.headers["x-request-id"]]["cost"] == pytest.approx(3 * PER_SECOND)
    assert rows[refused.value.response.headers["x-request-id"]]["status"] == "refused"


# ---- bad input ---------------------------------------------------------------------------------------------


def post(stack: Stack, path: str, content_type: str | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {MASTER_KEY}", **({"Content-Type": content_type} if content_type else {})}
    return httpx.post(f"{stack.base_url}/v1/audio/{path}", headers=headers, timeout=60, **kwargs)


def test_bad_uploads_are_clear_errors_and_only_refused_rows(stack, upstream):
    before = upstream.stats()["requests"]
    form = {"model": "whisper"}
    cases = {
        "json instead of a form": (post(stack, "transcriptions", json={"model": "whisper"}), 400, None),
        "a broken form": (
            post(stack, "transcriptions", "multipart/form-data; boundary=xyz", content=b"--xyz\r\nnot a part"),
            400,
            None,
        ),
        "no file": (post(stack, "transcriptions", data=form, files={"other": ("a.txt", b"x")}), 400, "file"),
        "no model": (post(stack, "translations", files={"file": ("tone.wav", TONE)}), 400, "model"),
        "not audio": (
            post(stack, "transcriptions", data=form, files={"file": ("notes.wav", b"plain text, not audio")}),
            400,
            "file",
        ),
        "a bad response_format": (
            post(stack, "transcriptions", data={**form, "response_format": "xml"}, files={"file": ("tone.wav", TONE)}),
            400,
            "response_format",
        ),
        "a bad temperature": (
            post(stack, "transcriptions", data={**form, "temperature": "hot"}, files={"file": ("tone.wav", TONE)}),
            400,
            "temperature",
        ),
        "a file over 25 MB": (
            post(stack, "transcriptions", data=form, files={"file": ("big.wav", TONE + b"\0" * (25 * 1024 * 1024))}),
            413,
            "file",
        ),
        "speech without a voice": (post(stack, "speech", json={"model": "tts", "input": "hi"}), 400, "voice"),
        "speech past 4096 characters": (
            post(stack, "speech", json={"model": "tts", "input": "x" * 4097, "voice": "alloy"}),
            400,
            "input",
        ),
    }
    ids = {}
    for what, (resp, status, param) in cases.items():
        assert resp.status_code == status, (what, resp.text)
        error = resp.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"], what
        assert error["param"] == param, (what, error)
        assert "Traceback" not in resp.text, what
        ids[what] = resp.headers["x-request-id"]
    rows = stack.usage_rows(list(ids.values()))
    for what, (_, status, _) in cases.items():
        row = rows[ids[what]]
        assert (row["status"], row["http_status"], row["cost"]) == ("refused", status, 0), what
    assert upstream.stats()["requests"] == before  # none of them reached the provider


def test_an_upstream_refusal_is_passed_on(stack):
    with pytest.raises(openai.BadRequestError) as refused:
        stack.client().audio.transcriptions.create(model="whisper-refusing", file=("tone.wav", TONE))
    assert refused.value.status_code == 400 and "fake bad request" in refused.value.message
    request_id = refused.value.response.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["http_status"], row["cost"]) == ("upstream_error", 400, 0)
    with pytest.raises(openai.BadRequestError) as refused_speech:  # (before any audio: a JSON error)
        stack.client().audio.speech.create(model="whisper-refusing", voice="alloy", input="hi")
    assert refused_speech.value.status_code == 400 and "fake bad request" in refused_speech.value.message
