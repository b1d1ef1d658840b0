"""Audio files the tests make themselves, of a known length: WAV through the standard library's
`wave`, and FLAC, MP3, Ogg Opus, MP4 and WebM written out by hand from their specifications
(the smallest files the real parsers accept), so no encoder is needed."""

from __future__ import annotations

import io
import math
import struct
import wave

from mutagen.ogg import OggPage


def wav_tone(seconds: float, rate: int = 16000, frequency: float = 440.0, width: int = 2) -> bytes:
    """A mono sine tone of `seconds`, PCM `width` bytes a sample."""
    frames = round(seconds * rate)
    peak = (1 << (8 * width - 1)) - 1
    samples = (round(peak * 0.3 * math.sin(2 * math.pi * frequency * i / rate)) for i in range(frames))
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(b"".join(s.to_bytes(width, "little", signed=True) for s in samples))
    return out.getvalue()


def wav_float(seconds: float, rate: int = 8000) -> bytes:
    """A WAV of 32-bit float samples (format 3, which the standard library does not read)."""
    data = b"\0" * (4 * round(seconds * rate))
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def flac_file(seconds: float, rate: int = 44100) -> bytes:
    """A FLAC stream of only its STREAMINFO block (which states the length)."""
    samples = round(seconds * rate)
    info = struct.pack(">HH", 4096, 4096) + b"\0" * 6  # block sizes, frame sizes unknown
    packed = (rate << 44) | (0 << 41) | (15 << 36) | samples  # rate, channels-1, bits-1, total samples
    info += packed.to_bytes(8, "big") + b"\0" * 16  # (no MD5)
    return b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info


def mp3_file(seconds: float) -> bytes:
    """MPEG-1 Layer III frames at 128 kbit/s, 44.1 kHz (1152 samples, 417 bytes each)."""
    frames = round(seconds * 44100 / 1152)
    frame = b"\xff\xfb\x90\x00" + b"\0" * 413
    return frame * frames


def ogg_opus(seconds: float) -> bytes:
    """An Ogg Opus stream: its header packets, then a last page whose granule says the length."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    pages = []
    for sequence, (packet, granule, last) in enumerate(
        [(head, 0, False), (tags, 0, False), (b"\xfc" + b"\0" * 40, 312 + round(seconds * 48000), True)]
    ):
        page = OggPage()
        page.serial, page.sequence, page.position, page.packets = 1, sequence, granule, [packet]
        page.first, page.last = sequence == 0, last
        pages.append(page.write())
    return b"".join(pages)


def _atom(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4_audio(seconds: float, timescale: int = 1000) -> bytes:
    """An M4A file: `ftyp` and a `moov` whose movie and audio track headers give the length (no
    sample table: the length is all a reader of headers needs)."""
    duration = round(seconds * timescale)
    mvhd = _atom(b"mvhd", b"\0" * 4 + struct.pack(">IIII", 0, 0, timescale, duration) + b"\0" * 80)
    mdhd = _atom(b"mdhd", b"\0" * 4 + struct.pack(">IIIIHH", 0, 0, timescale, duration, 0, 0))
    hdlr = _atom(b"hdlr", b"\0" * 8 + b"soun" + b"\0" * 13)
    trak = _atom(b"trak", _atom(b"mdia", mdhd + hdlr))
    return _atom(b"ftyp", b"M4A \0\0\0\0M4A isom") + _atom(b"moov", mvhd + trak)


def _ebml(ident: int, payload: bytes, unknown_size: bool = False) -> bytes:
    size = b"\x01\xff\xff\xff\xff\xff\xff\xff" if unknown_size else b"\x01" + len(payload).to_bytes(7, "big")
    return ident.to_bytes((ident.bit_length() + 7) // 8, "big") + size + payload


def webm_file(seconds: float, with_duration: bool = True, frame: bytes = b"\0" * 8) -> bytes:
    """A WebM file. With `with_duration`, Info states it; without, as browsers record: unknown-size
    segment and clusters, one block (`frame`) every 20 ms, the last one at `seconds`."""
    header = _ebml(0x1A45DFA3, _ebml(0x4282, b"webm"))
    scale = _ebml(0x2AD7B1, (1_000_000).to_bytes(3, "big"))
    if with_duration:
        info = _ebml(0x1549A966, scale + _ebml(0x4489, struct.pack(">d", seconds * 1000)))
        return header + _ebml(0x18538067, info)
    clusters = b""
    millis = round(seconds * 1000)
    for cluster_start in range(0, millis + 1, 1000):
        blocks = b"".join(
            _ebml(0xA3, b"\x81" + struct.pack(">h", t - cluster_start) + b"\x80" + frame)
            for t in range(cluster_start, min(cluster_start + 1000, millis + 1), 20)
        )
        clusters += _ebml(0x1F43B675, _ebml(0xE7, cluster_start.to_bytes(4, "big")) + blocks, unknown_size=True)
    return header + _ebml(0x18538067, _ebml(0x1549A966, scale) + clusters, unknown_size=True)
