"""raymer.audio.segment with the Silero VAD: recordings cut at pauses, decoded a chunk at a time."""

import csv
import io

import numpy as np
import pytest
import soundfile

from raymer.audio.decode import UNLIMITED, open_audio
from raymer.audio.segment import split
from raymer.config import SegmentConfig, SpeechConfig

RATE = 16_000


@pytest.fixture(scope="module")
def clips(piper_corpus) -> list[np.ndarray]:
    with open(piper_corpus) as f:
        rows = list(csv.DictReader(f))
    return [soundfile.read(piper_corpus.parent / r["path"], dtype="float32")[0] for r in rows[:6]]


def _flac(audio: np.ndarray) -> io.BytesIO:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, RATE, format="FLAC")
    buffer.seek(0)
    return buffer


def _joined(clips: list[np.ndarray], gap_s: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    parts, bounds, t = [], [], 0.0
    for c in clips:
        parts += [c, np.zeros(int(gap_s * RATE), np.float32)]
        bounds.append((t, t + len(c) / RATE))
        t += len(c) / RATE + gap_s
    return np.concatenate(parts), bounds


def test_a_short_clip_is_one_segment_with_its_speech(clips):
    (segment,) = split(
        iter(open_audio(_flac(clips[0]), UNLIMITED, 60)), SegmentConfig(), SpeechConfig()
    )
    assert segment.index == 0 and segment.start_s == 0
    assert segment.end_s == pytest.approx(len(clips[0]) / RATE)
    assert 0.5 * segment.end_s < segment.speech_s <= segment.end_s
    assert np.allclose(segment.audio, clips[0], atol=1e-4)


def test_a_long_recording_is_cut_near_its_pauses_whatever_the_chunk_size(clips):
    audio, bounds = _joined(clips, 2.5)
    cuts = []
    for chunk_s in (60, 300):
        decoder = open_audio(_flac(audio), UNLIMITED, chunk_s)
        assert decoder.duration_s == pytest.approx(len(audio) / RATE)
        cuts.append(
            [(s.start_s, s.end_s) for s in split(iter(decoder), SegmentConfig(), SpeechConfig())]
        )
    assert cuts[0] == cuts[1]
    assert len(cuts[0]) == len(bounds)
    for (start, end), (true_start, true_end) in zip(cuts[0], bounds, strict=True):
        assert abs(start - true_start) < 0.6 and abs(end - true_end) < 0.6
    assert all(end - start <= 30 for start, end in cuts[0])


def test_a_stream_pushed_in_any_pieces_is_cut_as_the_whole(clips):
    """The cutting pushed (a live stream's 20 ms and 250 ms pieces) gives the very segments
    of the whole array, sample for sample, holding at most a segment and a pause."""
    from raymer.audio.segment import Cutter, cut

    audio, _ = _joined(clips, 1.5)
    audio = np.concatenate([audio, audio[: 12 * RATE]])  # a long region split at its pauses
    options = SegmentConfig(max_segment_s=6.0, segment_over_s=6.0)
    whole = list(cut(iter([audio]), options, SpeechConfig()))
    assert len(whole) >= len(clips) and all(s.end_s - s.start_s <= 6 + 1e-6 for s in whole)
    assert all(a.end_s <= b.start_s for a, b in zip(whole, whole[1:], strict=False))
    for size in (320, 4000):
        cutter, got = Cutter(options, SpeechConfig()), []
        for i in range(0, len(audio), size):
            got += cutter.push(audio[i : i + size])
            assert len(cutter.buffer) <= (options.max_segment_s + options.min_silence_s + 1) * RATE
        got += cutter.finish()
        assert [(s.index, s.start_s, s.end_s) for s in got] == [
            (s.index, s.start_s, s.end_s) for s in whole
        ]
        assert all(np.array_equal(a.audio, b.audio) for a, b in zip(got, whole, strict=True))


def test_segments_never_pass_max_segment_s(clips):
    audio, _ = _joined(clips, 0.1)  # no pause long enough to end a segment
    options = SegmentConfig(max_segment_s=8.0, segment_over_s=8.0)
    segments = list(split(iter([audio]), options, SpeechConfig()))
    assert len(segments) > 1 and all(s.end_s - s.start_s <= 8.0 + 1e-6 for s in segments)
    assert [s.index for s in segments] == list(range(len(segments)))


def test_silence_is_one_empty_segment_over_the_whole_recording():
    silence = np.zeros(95 * RATE, np.float32)
    (segment,) = split(
        iter(open_audio(_flac(silence), UNLIMITED, 60)), SegmentConfig(), SpeechConfig()
    )
    assert segment.audio.size == 0 and segment.speech_s == 0 and segment.end_s == 95
