"""raymer.segment's decoder without the VAD: limits checked from the header, non-audio refused
(the VAD's cuts: tests/integration/test_segment_vad.py)."""

import io
import struct
import time

import pytest

from raymer.audio import AudioError, DecodeLimits
from raymer.segment import StreamDecoder

RATE = 16_000


def _wav_header(seconds: float, rate: int = RATE) -> bytes:
    size = int(seconds * rate) * 2
    return (
        b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", size)
    )  # fmt: skip


def test_a_recording_over_the_limit_is_refused_from_its_header(tmp_path):
    """A sparse 2-hour WAV: refused before any decoding, in well under a second."""
    path = tmp_path / "two_hours.wav"
    with open(path, "wb") as f:
        f.write(_wav_header(7200))
        f.truncate(len(_wav_header(7200)) + 7200 * RATE * 2)
    started = time.perf_counter()
    limits = DecodeLimits(max_duration_s=3600)
    with open(path, "rb") as f, pytest.raises(AudioError, match="7,200.0 s .* max_duration_s=3600"):
        StreamDecoder(f, 60, limits)
    assert time.perf_counter() - started < 1.0


def test_not_audio_is_refused_with_the_reason():
    with pytest.raises(AudioError, match="not a readable audio file"):
        StreamDecoder(io.BytesIO(b"definitely not audio " * 40), 60)
