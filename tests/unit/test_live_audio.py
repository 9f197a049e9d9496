"""Audio as it arrives: the VAD run over a stream with its state carried gives the same
probabilities and regions whatever the pieces' sizes (and faster-whisper's own rule's
regions); raw PCM and encoded chunks give the same samples as the whole."""

from __future__ import annotations

import io

import numpy as np
import pytest

from raymer.audio.decode import AudioError, decode_audio
from raymer.audio.streaming import Encoded, Pcm
from raymer.audio.vad import FRAME, Regions, Vad
from raymer.config import DecodeConfig


def _bursts(seconds: float = 40.0, seed: int = 0) -> np.ndarray:
    """Voiced-like bursts (harmonics with a moving pitch) between silences."""
    rng = np.random.default_rng(seed)
    out, t = [], 0
    while t < seconds * 16_000:
        n = int(rng.uniform(0.5, 4.0) * 16_000)
        f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(np.arange(n) / 3000))
        phase = 2 * np.pi * np.cumsum(f0) / 16_000
        voiced = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2
        voiced *= np.abs(np.sin(np.arange(n) / 1600))  # syllables
        out += [
            voiced.astype(np.float32),
            np.zeros(int(rng.uniform(0.2, 2.5) * 16_000), np.float32),
        ]
        t += len(out[-2]) + len(out[-1])
    return np.concatenate(out)


def _run(audio: np.ndarray, size: int) -> tuple[np.ndarray, list]:
    vad, regions, probs, found = Vad(), Regions(0.5, 1.0, 5.0), [], []
    for i in range(0, len(audio), size):
        p = vad.push(audio[i : i + size])
        probs.append(p)
        found += regions.push(p)
    p = vad.finish()
    probs.append(p)
    found += regions.push(p) + regions.finish(len(audio))
    return np.concatenate(probs), found


def test_the_vad_over_a_stream_does_not_depend_on_the_pieces():
    audio = _bursts()
    probs, found = _run(audio, len(audio))
    assert len(probs) == -(-len(audio) // FRAME)
    for size in (320, 4000, 48_000):  # 20 ms, 250 ms, 3 s
        p, f = _run(audio, size)
        assert np.array_equal(p, probs) and f == found


def test_the_regions_are_faster_whisper_s_own_rule(monkeypatch):
    """The rule over the same probabilities: a run of synthetic probabilities through
    ``Regions`` and through faster-whisper's ``get_speech_timestamps`` (its model answering
    those probabilities) gives the same regions, the max-length splits included."""
    from faster_whisper import vad as fw

    rng = np.random.default_rng(3)
    probs = np.concatenate(
        [
            np.full(int(rng.integers(3, 400)), rng.choice([0.05, 0.3, 0.45, 0.7, 0.95]))
            for _ in range(80)
        ]
    ).astype(np.float32)

    class Model:
        def __call__(self, audio):
            return probs[: len(audio) // FRAME]

    monkeypatch.setattr(fw, "get_vad_model", lambda: Model())
    audio = np.zeros(len(probs) * FRAME, np.float32)
    for max_s in (30.0, 3.0):
        options = fw.VadOptions(
            threshold=0.5, min_silence_duration_ms=1000, speech_pad_ms=0,
            max_speech_duration_s=max_s, min_speech_duration_ms=250,
        )  # fmt: skip
        theirs = [(t["start"], t["end"]) for t in fw.get_speech_timestamps(audio, options)]
        regions = Regions(0.5, 1.0, max_s)
        mine = []
        for k in range(0, len(probs), 37):
            mine += regions.push(probs[k : k + 37])
        mine += regions.finish(len(audio))
        assert mine == theirs and len(mine) > 5


def test_raw_pcm_in_any_pieces_gives_the_same_samples():
    rng = np.random.default_rng(0)
    frames = (rng.standard_normal((22_050, 2)) * 3000).astype("<i2")
    data = frames.tobytes()
    whole = Pcm(22_050, 2)
    expected = np.concatenate([whole.push(data), whole.finish()])
    assert len(expected) == 16_000
    pieces = Pcm(22_050, 2)
    got = np.concatenate(
        [pieces.push(data[i : i + 333]) for i in range(0, len(data), 333)] + [pieces.finish()]
    )
    assert np.array_equal(got, expected)
    same = Pcm(16_000, 1, "f32")  # 16 kHz mono floats: as they are
    x = rng.standard_normal(1000).astype("<f4")
    assert np.array_equal(same.push(x.tobytes()[:1001]), x[:250]) and len(same.rest) == 1
    with pytest.raises(AudioError, match="NaN"):
        Pcm(16_000, 1, "f32").push(np.full(4, np.nan, "<f4").tobytes())


def test_encoded_chunks_are_decoded_as_the_whole_file():
    import soundfile

    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    soundfile.write(
        buf, (0.1 * rng.standard_normal(3 * 16_000)).astype(np.float32), 16_000, format="FLAC"
    )
    data = buf.getvalue()
    whole = decode_audio(data)
    for size in (100, 4096):
        stream = Encoded(DecodeConfig())
        got = [stream.push(data[i : i + size]) for i in range(0, len(data), size)]
        assert np.array_equal(np.concatenate([*got, stream.finish()]), whole)
    bad = Encoded(DecodeConfig())
    with pytest.raises(AudioError, match="not a readable audio file"):
        bad.push(b"not audio at all" * 100)
        bad.finish()
