"""Windows and pooling on decoded samples and encoder frames (numpy arrays): what the
featurizers (Whisper's frames, prosody) share."""

from __future__ import annotations

import numpy as np

from raymer.audio.decode import SAMPLE_RATE


def split_windows(samples: np.ndarray, window_s: float = 30.0) -> list[np.ndarray]:
    """Cut long audio into consecutive windows of at most ``window_s`` seconds."""
    size = int(window_s * SAMPLE_RATE)
    return [samples[i : i + size] for i in range(0, max(len(samples), 1), size)]


def pool_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """Average consecutive groups of ``factor`` frames: (T, D) -> (ceil(T / factor), D)."""
    if factor <= 1 or len(frames) == 0:
        return frames
    t, d = frames.shape
    pad = (-t) % factor
    counts = np.full(((t + pad) // factor, 1), factor, dtype=np.float32)
    if pad:
        frames = np.concatenate([frames, np.zeros((pad, d), dtype=frames.dtype)])
        counts[-1, 0] = factor - pad
    return frames.reshape(-1, factor, d).sum(axis=1) / counts
