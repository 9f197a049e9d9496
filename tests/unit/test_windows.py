"""The one windowing rule (``raymer.audio.segment.windows_of``, ``pack``) and how a packed
window's words are shared out among its pieces (``raymer.models.whisper_packed``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from raymer.audio.segment import Segment, pack, windows_of
from raymer.config import SpeechConfig

RATE = 16_000
SPEECH = SpeechConfig()  # min_speech_s 0.3


def _segments(lengths_s: list[float], heard: list[float] | None = None) -> list[Segment]:
    heard = heard or [max(0.0, s - 0.4) for s in lengths_s]
    out, t = [], 0.0
    for i, (length, speech) in enumerate(zip(lengths_s, heard, strict=True)):
        audio = np.full(int(length * RATE), 0.01 * (i + 1), np.float32)
        out.append(Segment(i, t, t + length, audio, speech))
        t += length + 1.5
    return out


def test_consecutive_segments_fill_windows_of_at_most_30_s_in_order():
    lengths = [4.0, 3.5, 6.0, 9.0, 8.0, 2.5, 29.0, 3.0]
    windows = [segs for _, segs in pack(iter(_segments(lengths)), SPEECH)]
    assert [[s.index for s in w] for w in windows] == [[0, 1, 2, 3], [4, 5], [6], [7]]
    for window in windows:
        assert sum(s.audio.size for s in window) <= 30 * RATE


def test_a_segment_without_speech_is_a_window_of_its_own():
    segments = _segments([4.0, 3.0, 4.0, 5.0], heard=[3.0, 0.1, 3.5, 4.0])
    windows = [segs for _, segs in pack(iter(segments), SPEECH)]
    assert [[s.index for s in w] for w in windows] == [[0], [1], [2, 3]]


def test_windows_of_keeps_a_whole_recording_alone_and_packs_a_cut_one():
    whole = Segment(0, 0.0, 6.0, np.ones(6 * RATE, np.float32), 5.0, total_s=6.0, whole=True)
    ((window, segs),) = list(windows_of(iter([whole]), SPEECH))
    assert not window.packed and segs == [whole] and window.pieces[0][1] == 5.0
    cut = _segments([4.0, 5.0, 4.0])
    ((window, segs),) = list(windows_of(iter(cut), SPEECH))
    assert window.packed and [s.index for s in segs] == [0, 1, 2]
    assert [p[0].size for p in window.pieces] == [s.audio.size for s in cut]
    assert list(windows_of(iter([]), SPEECH)) == []


def test_the_windows_of_a_recording_do_not_depend_on_what_follows_it():
    """A window closes on its own recording's segments: the first windows of a recording
    are the same whether it goes on or not."""
    segments = _segments([5.0] * 14)
    short = [[s.index for s in w] for _, w in windows_of(iter(segments[:7]), SPEECH)]
    longer = [[s.index for s in w] for _, w in windows_of(iter(segments), SPEECH)]
    assert longer[: len(short) - 1] == short[:-1] and longer[0] == [0, 1, 2, 3, 4, 5]


def test_a_packed_windows_words_go_to_the_piece_their_middle_falls_in():
    from raymer.models.whisper_packed import _pieces

    fz = SimpleNamespace(pool=5, with_prosody=lambda clips, features: None)
    pieces = [np.zeros(2 * RATE, np.float32), np.zeros(3 * RATE, np.float32)]
    frames = [np.ones((100, 4), np.float32), 2 * np.ones((150, 4), np.float32)]
    words = [
        {"word": " Hello", "start": 0.2, "end": 0.6, "probability": 0.9},
        {"word": " there.", "start": 0.7, "end": 2.2, "probability": 0.8},  # middle 1.45: first
        {"word": " Stop", "start": 2.1, "end": 2.5, "probability": 0.5},  # middle 2.3: second
        {"word": " it!", "start": 2.6, "end": 3.0, "probability": 0.5},
    ]
    first, second = _pieces(fz, pieces, words, frames, "en", 1.0, -0.3, 0.01)
    assert (first.transcript, second.transcript) == ("Hello there.", "Stop it!")
    assert first.segments[0].start == pytest.approx(0.2) and first.segments[0].end == 2.0
    assert second.segments[0].start == pytest.approx(0.1) and second.segments[0].end == 1.0
    assert second.avg_logprob == pytest.approx(np.log(0.5))
    assert first.frames.shape == (20, 4) and second.frames.shape == (30, 4)  # 10 Hz, own frames
    assert float(second.embedding[0]) == 2.0 and first.window_s == 30.0
    quiet, _ = _pieces(fz, pieces, [], frames, "en", 1.0, -0.3, 0.01)
    assert quiet.transcript == "" and quiet.segments == [] and quiet.avg_logprob == -0.3
