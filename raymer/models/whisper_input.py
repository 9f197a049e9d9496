"""What Whisper's encoder reads, made one way by extraction, serving and fine-tuning: the
window a clip is encoded in (``fit``: the shortest that holds it; ``full``: Whisper's own
30 s) and its log-mel features, summed in one order in every process."""

from __future__ import annotations

import math

import numpy as np

MAX_WINDOW_S = 30.0


WINDOWS = ("auto", "fit", "full")


def window_seconds(longest_s: float, mode: str, step_s: float, min_s: float) -> float:
    """Encoder window of a (30 s-capped) piece lasting ``longest_s``: fitted (``fit``, and
    the first try of ``auto``) or 30 s (``full``)."""
    if mode not in WINDOWS:
        raise ValueError(f"unknown window {mode!r}; choose one of {WINDOWS}")
    if mode == "full":
        return MAX_WINDOW_S
    fitted = math.ceil(max(longest_s, 1e-3) / step_s) * step_s
    return float(min(MAX_WINDOW_S, max(min_s, fitted)))


def log_mel(extractor, samples: np.ndarray, n_frames: int) -> np.ndarray:
    """Whisper's log-mel features of 16 kHz samples, cut or zero-padded to ``n_frames``
    (100 per second), as faster-whisper's ``pad_or_trim`` does. Extraction and fine-tuning
    both use it, so the torch encoder sees what the CTranslate2 one saw.

    The steps are faster-whisper's ``FeatureExtractor.__call__`` but for the mel projection,
    summed by ``einsum`` instead of BLAS: numpy's OpenBLAS sums a matrix product in another
    order on one thread (``OMP_NUM_THREADS=1``, as in every Ray worker) than on several (a
    notebook), and Whisper's beam search turns that last-bit difference into another word now
    and then. Summed one way, a clip gets the same features in every process."""
    waveform = np.pad(np.asarray(samples, dtype=np.float32), (0, 160))
    window = np.hanning(extractor.n_fft + 1)[:-1].astype(np.float32)
    stft = extractor.stft(
        waveform, extractor.n_fft, extractor.hop_length, window=window, return_complex=True
    ).astype(np.complex64)
    magnitudes = np.abs(stft[..., :-1]) ** 2
    filters = np.asarray(extractor.mel_filters, dtype=magnitudes.dtype)
    mel = np.einsum("mf,ft->mt", filters, magnitudes, optimize=False)
    log_spec = np.log10(np.clip(mel, a_min=1e-10, a_max=None))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    feat = ((log_spec + 4.0) / 4.0)[:, :n_frames]
    if feat.shape[1] < n_frames:
        feat = np.pad(feat, ((0, 0), (0, n_frames - feat.shape[1])))
    return feat.astype(np.float32)


def mel_window(durations_s: list[float], step_s: float = 2.0, min_s: float = 8.0) -> int:
    """Mel frames of the fitted window for clips of these durations (30 s at most)."""
    longest = min(MAX_WINDOW_S, max(durations_s, default=0.0))
    return int(round(window_seconds(longest, "fit", step_s, min_s) * 100))
