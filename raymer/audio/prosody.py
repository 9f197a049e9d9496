"""Prosody: openSMILE's eGeMAPS v02 low-level descriptors (pitch, loudness, jitter, shimmer,
HNR, spectral slopes and formants: the features every speech emotion baseline uses), at
100 Hz, averaged to the audio frame rate. No Ray, no torch.

With ``prosody: true`` the featurizer appends them to the Whisper frames, so every path that
carries frames (extraction, recognize, serve, the library) carries them too."""

from __future__ import annotations

import functools

import numpy as np

from raymer.audio.decode import SAMPLE_RATE
from raymer.audio.frames import pool_frames
from raymer.extras import require

PROSODY_DIM = 25  # eGeMAPS v02 low-level descriptors
LLD_RATE_HZ = 100  # openSMILE's 10 ms hop


@functools.cache
def _smile():
    require("opensmile", "prosody", "prosody (prosody: true)")
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    )


def prosody_frames(samples: np.ndarray, frame_rate_hz: float, n_frames: int) -> np.ndarray:
    """(n_frames, PROSODY_DIM) float32: the descriptors of 16 kHz ``samples`` averaged over
    each frame of ``frame_rate_hz`` and cut or zero-padded to the ``n_frames`` the Whisper
    frames of the same clip have (a clip too short for openSMILE's window: zeros)."""
    out = np.zeros((n_frames, PROSODY_DIM), dtype=np.float32)
    samples = np.asarray(samples, dtype=np.float32)
    if n_frames == 0 or len(samples) < SAMPLE_RATE // 10:
        return out
    lld = _smile().process_signal(samples, SAMPLE_RATE).to_numpy(dtype=np.float32)
    if len(lld) == 0:
        return out
    pooled = pool_frames(np.nan_to_num(lld), max(1, round(LLD_RATE_HZ / frame_rate_hz)))
    n = min(n_frames, len(pooled))
    out[:n] = pooled[:n]
    return out
