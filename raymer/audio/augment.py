"""Recording conditions: noise, a room, a telephone band, a codec, a level and a speed,
drawn from a seed and applied to 16 kHz audio with maintained libraries (audiomentations
and pyroomacoustics for noise, rooms and filters, PyAV's FFmpeg for the codecs, soxr for
resampling). No Ray, no torch.

Two users share one rule: ``raymer extract``'s ``augment`` (copies of each training clip in
other conditions, ``copies``) and ``raymer corpus synth`` (each generated clip recorded in a
condition of its own, so held-out speakers are not recorded in a studio the training
speakers share).
"""

from __future__ import annotations

import contextlib
import io
import random
import zlib
from dataclasses import dataclass

import numpy as np

from raymer.audio.decode import SAMPLE_RATE
from raymer.config.extract import AugmentConfig
from raymer.extras import require

CODECS = {"mp3": ("mp3", "libmp3lame", 32_000), "opus": ("ogg", "libopus", 16_000)}


@dataclass(frozen=True)
class Condition:
    """One recording condition; ``None`` / ``False``: that effect is not applied."""

    snr_db: float | None = None  # white noise at this signal-to-noise ratio
    rt60_s: float | None = None  # a simulated room with this reverberation time
    telephone: bool = False  # 300-3,400 Hz through an 8 kHz channel
    codec: str | None = None  # mp3 or opus round trip at a low bit rate
    gain_db: float | None = None
    speed: float | None = None  # resampled: tempo and pitch together (Kaldi's perturbation)

    def describe(self) -> str:
        """What was applied, e.g. ``noise 12.0 dB SNR; room RT60 0.45 s; mp3``."""
        parts = []
        if self.snr_db is not None:
            parts.append(f"noise {self.snr_db:.1f} dB SNR")
        if self.rt60_s is not None:
            parts.append(f"room RT60 {self.rt60_s:.2f} s")
        if self.telephone:
            parts.append("telephone band")
        if self.codec:
            parts.append(self.codec)
        if self.gain_db is not None:
            parts.append(f"gain {self.gain_db:+.1f} dB")
        if self.speed is not None:
            parts.append(f"speed {self.speed:.2f}")
        return "; ".join(parts) or "unchanged"


def seed_of(*parts: object) -> int:
    """A stable 32-bit seed of its parts (the same in every process, unlike ``hash``)."""
    return zlib.crc32(":".join(str(p) for p in parts).encode())


def draw(cfg: AugmentConfig, rng: random.Random) -> Condition:
    """A condition with each effect drawn with its probability and value range."""

    def maybe(p: float, lo_hi: tuple[float, float]) -> float | None:
        hit = rng.random() < p
        value = rng.uniform(*lo_hi)
        return round(value, 3) if hit else None

    snr = maybe(cfg.noise_p, cfg.snr_db)
    rt60 = maybe(cfg.reverb_p, cfg.rt60_s)
    telephone = rng.random() < cfg.telephone_p
    codec = rng.choice(sorted(CODECS)) if rng.random() < cfg.codec_p else None
    gain = maybe(cfg.gain_p, cfg.gain_db)
    speed = maybe(cfg.speed_p, cfg.speed)
    return Condition(snr, rt60, telephone, codec, gain, speed)


def copies(audio: np.ndarray, cfg: AugmentConfig, clip_id: str) -> list[tuple[np.ndarray, str]]:
    """``cfg.copies`` augmented copies of a clip, each with its description; the same clip
    id and seed give the same copies in any process."""
    out = []
    for k in range(cfg.copies):
        seed = seed_of(cfg.seed, clip_id, k)
        rng = random.Random(seed)
        condition = draw(cfg, rng)
        for _ in range(20):  # a copy changes something (unless every probability is 0)
            if condition != Condition():
                break
            condition = draw(cfg, rng)
        out.append((apply(audio, condition, seed), condition.describe()))
    return out


def apply(audio: np.ndarray, condition: Condition, seed: int) -> np.ndarray:
    """``audio`` (16 kHz mono float32) recorded in ``condition``: speed, room, telephone
    band, noise, codec, then level; clipped to [-1, 1]."""
    require("audiomentations", "augment", "augmentation")
    import audiomentations as A

    x = np.ascontiguousarray(audio, dtype=np.float32)
    if len(x) == 0:
        return x
    with _seeded(seed):
        if condition.speed is not None:
            x = _resample(x, round(SAMPLE_RATE * condition.speed), SAMPLE_RATE)
        if condition.rt60_s is not None:
            room = A.RoomSimulator(
                calculation_mode="rt60",
                min_target_rt60=condition.rt60_s,
                max_target_rt60=condition.rt60_s,
                max_order=10,
                use_ray_tracing=False,  # image sources only: the same room, the same response
                leave_length_unchanged=True,
                p=1.0,
            )
            x = room(x, SAMPLE_RATE)
        if condition.telephone:
            x = _resample(_resample(x, SAMPLE_RATE, 8_000), 8_000, SAMPLE_RATE)[: len(x)]
            x = A.HighPassFilter(min_cutoff_freq=300.0, max_cutoff_freq=300.0, p=1.0)(
                x, SAMPLE_RATE
            )
        if condition.snr_db is not None:
            noise = A.AddGaussianSNR(
                min_snr_db=condition.snr_db, max_snr_db=condition.snr_db, p=1.0
            )
            x = noise(x, SAMPLE_RATE)
        if condition.codec:
            x = codec_round_trip(x, condition.codec)
        if condition.gain_db is not None:
            x = A.Gain(min_gain_db=condition.gain_db, max_gain_db=condition.gain_db, p=1.0)(
                x, SAMPLE_RATE
            )
    return np.clip(np.nan_to_num(x), -1.0, 1.0).astype(np.float32)


def codec_round_trip(audio: np.ndarray, codec: str) -> np.ndarray:
    """Encode with FFmpeg's ``codec`` (``CODECS``: mp3 or opus, low bit rate) and decode
    again with raymer's one decoder; the length is kept."""
    import av

    from raymer.audio.decode import decode_audio

    fmt, name, bit_rate = CODECS[codec]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream = container.add_stream(name, rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(
            np.clip(audio, -1, 1).astype(np.float32)[None, :], format="flt", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    decoded = decode_audio(buf.getvalue())
    out = np.zeros(len(audio), dtype=np.float32)
    n = min(len(out), len(decoded))
    out[:n] = decoded[:n]
    return out


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, rate, target).astype(np.float32)


@contextlib.contextmanager
def _seeded(seed: int):
    """audiomentations draws from the global ``random`` and ``numpy.random``: seeded for the
    call, then given back as they were."""
    state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)
        np.random.set_state(np_state)
