"""How many seconds of audio an uploaded file holds, read from the file itself (never from what
the client says): the budget's worst case and, when the provider reports no duration, the usage.

The format is told by the file's first bytes, not by its name: WAV from its header (the standard
library's `wave`, and mutagen for the WAV variants `wave` does not read, such as float or
extensible PCM), FLAC, MP3 (MPEG audio), Ogg (Vorbis, Opus, FLAC, Speex), MP4 / M4A and ADTS AAC
through mutagen, and WebM through gateway/audio/webm.py. A file none of them reads, or one whose
header claims no audio or an absurd length, is refused (400).
"""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Callable
from typing import Any

import mutagen
from mutagen.aac import AAC
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggspeex import OggSpeex
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from gateway.audio.webm import NotWebm, webm_seconds

SUPPORTED_FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
MAX_SECONDS = 24 * 3600.0  # a header claiming more than a day of audio is not believed


class UnreadableAudio(ValueError):
    """The file is not audio whose duration can be read."""


def _wav_seconds(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data)) as reader:
            frame_bytes = reader.getsampwidth() * reader.getnchannels()
            rate, frames = reader.getframerate(), reader.getnframes()
    except (wave.Error, EOFError):
        # WAV variants the standard library does not read (float samples, WAVE_FORMAT_EXTENSIBLE)
        info: Any = WAVE(io.BytesIO(data)).info  # (mutagen types `info` by its base class)
        seconds = float(info.length)
        byte_rate = info.sample_rate * info.channels * info.bits_per_sample / 8
        return min(seconds, len(data) / byte_rate) if byte_rate else seconds
    if not rate or not frame_bytes:
        raise UnreadableAudio("a WAV header without a sample rate or sample size")
    # A header written before the length was known (a streamed recording) may claim more frames
    # than the file holds: count no more than there are bytes for.
    return min(frames, len(data) // frame_bytes) / rate


def _mutagen_seconds(kind: type[mutagen.FileType]) -> Callable[[bytes], float]:
    def seconds(data: bytes) -> float:
        info: Any = kind(io.BytesIO(data)).info
        return float(info.length)

    return seconds


def _ogg_seconds(data: bytes) -> float:
    found = mutagen.File(io.BytesIO(data), options=[OggVorbis, OggOpus, OggFLAC, OggSpeex])
    if found is None:
        raise UnreadableAudio("an Ogg stream that is not Vorbis, Opus, FLAC or Speex")
    info: Any = found.info
    return float(info.length)


def _webm_seconds(data: bytes) -> float:
    try:
        return webm_seconds(data)
    except NotWebm as exc:
        raise UnreadableAudio(str(exc)) from None


def _id3_size(data: bytes) -> int:
    """Bytes of an ID3v2 tag at the start of `data` (0 when there is none)."""
    if not data.startswith(b"ID3") or len(data) < 10:
        return 0
    size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
    return 10 + size + (10 if data[5] & 0x10 else 0)  # (a footer follows when flagged)


def sniff(data: bytes) -> str | None:
    """The audio container the bytes start with: wav, flac, ogg, mp4, webm, mp3, aac, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"OggS":
        return "ogg"
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    body = data[_id3_size(data) :]
    if body[:4] == b"fLaC":
        return "flac"
    if len(body) >= 2 and body[0] == 0xFF and body[1] & 0xE0 == 0xE0:
        return "aac" if body[1] & 0x06 == 0 else "mp3"  # (layer bits 00: an ADTS header)
    return None


READERS: dict[str, Callable[[bytes], float]] = {
    "wav": _wav_seconds,
    "flac": _mutagen_seconds(FLAC),
    "ogg": _ogg_seconds,
    "mp4": _mutagen_seconds(MP4),
    "webm": _webm_seconds,
    "mp3": _mutagen_seconds(MP3),
    "aac": _mutagen_seconds(AAC),
}


def audio_seconds(data: bytes) -> float:
    """Seconds of audio in `data`; UnreadableAudio when it is not a file of a known format whose
    length can be read."""
    kind = sniff(data)
    if kind is None:
        raise UnreadableAudio("not a file of a supported audio format")
    try:
        seconds = READERS[kind](data)
    except UnreadableAudio:
        raise
    except Exception as exc:  # (a parser meeting damaged or hostile bytes may raise anything)
        raise UnreadableAudio(f"the {kind} file could not be read ({type(exc).__name__})") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise UnreadableAudio(f"the {kind} file holds no audio")
    if seconds > MAX_SECONDS:
        raise UnreadableAudio(f"the {kind} file's header claims {seconds / 3600:.0f} hours of audio")
    return seconds
