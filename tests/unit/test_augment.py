"""Recording conditions (raymer.audio.augment) and prosody (raymer.audio.prosody): each effect changes
the audio as its description says, seeded; the prosody columns follow pitch and loudness."""

import numpy as np
import pytest
from pydantic import ValidationError

from raymer.audio import augment
from raymer.audio.augment import Condition
from raymer.config import AugmentConfig, ExtractConfig

RATE = 16_000


def _voice(seconds=2.0, f0=150.0, amp=0.1, seed=0):
    """A voiced sound: a tone with harmonics and a slow amplitude swing."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    x = x * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    x = x / np.abs(x).max() * amp
    return (x + np.random.default_rng(seed).normal(0, 1e-4, len(t))).astype(np.float32)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _band_energy(x, lo, hi):
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())


def test_each_effect_changes_the_audio_as_described():
    x = _voice()
    noisy = augment.apply(x, Condition(snr_db=10.0), seed=1)
    snr = 20 * np.log10(_rms(x) / _rms(noisy - x))
    assert abs(snr - 10.0) < 1.0
    louder = augment.apply(x, Condition(gain_db=6.0), seed=1)
    assert abs(20 * np.log10(_rms(louder) / _rms(x)) - 6.0) < 0.1
    slower = augment.apply(x, Condition(speed=0.8), seed=1)
    assert abs(len(slower) - len(x) / 0.8) < 5
    hiss = np.random.default_rng(2).normal(0, 0.05, RATE).astype(np.float32)  # every band
    phone = augment.apply(hiss, Condition(telephone=True), seed=1)
    assert len(phone) == len(hiss)
    assert _band_energy(phone, 4_500, 8_000) < 1e-3 * _band_energy(hiss, 4_500, 8_000)
    assert _band_energy(phone, 0, 150) < 0.1 * _band_energy(hiss, 0, 150)
    assert _band_energy(phone, 500, 3_000) > 0.5 * _band_energy(hiss, 500, 3_000)
    room = augment.apply(x, Condition(rt60_s=0.6), seed=1)
    assert len(room) == len(x) and not np.allclose(room, x, atol=1e-3)
    for codec in ("mp3", "opus"):
        coded = augment.apply(x, Condition(codec=codec), seed=1)
        assert len(coded) == len(x) and np.abs(coded - x).max() > 0
        assert np.corrcoef(x[4000:-4000], coded[4000:-4000])[0, 1] > 0.9, codec


def test_copies_are_seeded_by_clip_and_each_changes_something():
    x = _voice(1.0)
    cfg = AugmentConfig(copies=3, seed=4)
    first, again = augment.copies(x, cfg, "clip-a"), augment.copies(x, cfg, "clip-a")
    assert len(first) == 3
    for (a, what), (b, what_again) in zip(first, again, strict=True):
        assert what == what_again != "unchanged" and np.array_equal(a, b)
        assert len(a) != len(x) or not np.allclose(a, x)
    other = augment.copies(x, cfg, "clip-b")
    assert [w for _, w in other] != [w for _, w in first]
    assert augment.copies(x, AugmentConfig(copies=0), "clip-a") == []


def test_draws_follow_the_probabilities():
    import random

    rng = random.Random(0)
    cfg = AugmentConfig(noise_p=1.0, reverb_p=0.0, telephone_p=0.0, codec_p=0.0, gain_p=0.0)
    cfg = cfg.model_copy(update={"speed_p": 0.0, "snr_db": (20.0, 21.0)})
    for _ in range(20):
        c = augment.draw(cfg, rng)
        assert 20.0 <= c.snr_db <= 21.0
        assert (c.rt60_s, c.telephone, c.codec, c.gain_db, c.speed) == (
            None,
            False,
            None,
            None,
            None,
        )


@pytest.mark.parametrize(
    "bad",
    [{"snr_db": (30, 5)}, {"speed": (0.2, 1.0)}, {"rt60_s": (0.0, 0.5)}, {"copies": -1}],
)
def test_bad_augment_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        AugmentConfig(**bad)
    with pytest.raises(ValidationError):
        ExtractConfig(augment=bad)


def test_prosody_follows_pitch_and_loudness():
    from raymer.audio.prosody import PROSODY_DIM, prosody_frames

    names = _lld_names()
    f0, loud = names.index("F0semitoneFrom27.5Hz_sma3nz"), names.index("Loudness_sma3")
    low, high = prosody_frames(_voice(f0=120), 10, 20), prosody_frames(_voice(f0=240), 10, 20)
    assert low.shape == (20, PROSODY_DIM) and low.dtype == np.float32
    # an octave up is 12 semitones up (voiced middle frames)
    assert abs(np.median(high[3:17, f0]) - np.median(low[3:17, f0]) - 12) < 1.5
    quiet = prosody_frames(_voice(amp=0.02), 10, 20)
    assert np.median(quiet[3:17, loud]) < 0.5 * np.median(low[3:17, loud])
    # cut or padded to the Whisper frames of the clip; too short a clip: zeros
    assert prosody_frames(_voice(), 10, 25)[22:].sum() == 0
    assert prosody_frames(_voice(0.05), 10, 1).sum() == 0


def _lld_names():
    import opensmile

    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    )
    return list(smile.feature_names)


def test_the_descriptors_are_opensmile_s_own_without_its_package(tmp_path):
    """raymer drives openSMILE's C API without importing the ``opensmile`` package (pandas,
    audinterface: about 100 MB a process): the descriptors equal ``opensmile.Smile``'s to the
    bit, for a voice, noise, a clip at full scale and a clip too short for a frame."""
    import subprocess
    import sys

    import opensmile

    from raymer.audio.prosody import FEATURE_SET, LEVEL, PROSODY_DIM, _lld

    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    )
    assert (smile.feature_set.value, smile.feature_level.value) == (FEATURE_SET, LEVEL)
    assert smile.num_features == PROSODY_DIM
    rng = np.random.default_rng(3)
    for samples in (
        _voice(1.5),
        0.1 * rng.standard_normal(RATE * 2).astype(np.float32),
        np.clip(1.2 * _voice(0.7, amp=1.0), -1.0, 1.0),
        _voice(0.05),
    ):
        theirs = smile.process_signal(samples, RATE).to_numpy(dtype=np.float32)
        mine = _lld(samples)
        if theirs.shape[0] == 1 and np.isnan(theirs).all():  # opensmile: too short, a NaN row
            assert mine.shape == (0, PROSODY_DIM)
            continue
        assert mine.dtype == np.float32 and mine.shape == theirs.shape
        assert np.array_equal(mine, theirs, equal_nan=True)
    code = (
        "import sys, numpy as np; from raymer.audio.prosody import prosody_frames;"
        "x = prosody_frames(np.sin(np.arange(16000) / 9).astype(np.float32), 50, 50);"
        "assert x.any(); print(sorted({'pandas', 'opensmile', 'audinterface'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_decoding_with_augment_follows_each_clip_with_its_copies(tmp_path):
    import soundfile

    from raymer.config import DecodeConfig
    from raymer.pipeline.stages import decode_batch

    for name in ("a", "b"):
        soundfile.write(tmp_path / f"{name}.wav", _voice(0.5), RATE)
    batch = {
        "path": np.array(
            [str(tmp_path / "a.wav"), str(tmp_path / "missing.wav"), str(tmp_path / "b.wav")]
        ),
        "id": np.array(["a", "m", "b"]),
        "speaker": np.array(["s1", "s1", "s2"]),
    }
    out = decode_batch(batch, DecodeConfig(), augment=AugmentConfig(copies=2))
    assert out["id"].tolist() == ["a", "a", "a", "m", "b", "b", "b"]  # a failed clip: no copies
    assert out["speaker"].tolist() == ["s1"] * 4 + ["s2"] * 3
    kinds = out["augment"].tolist()
    assert kinds[0] is None and kinds[3] is None and kinds[4] is None
    assert all(isinstance(k, str) and k != "unchanged" for k in kinds[1:3] + kinds[5:])
    clip, copy = (np.frombuffer(out["audio"][i], np.float32) for i in (0, 1))
    assert len(clip) == RATE // 2 and not (len(copy) == len(clip) and np.allclose(copy, clip))
    plain = decode_batch(batch, DecodeConfig())
    assert plain["id"].tolist() == ["a", "m", "b"] and set(plain["augment"].tolist()) == {None}
