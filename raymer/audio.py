"""Decode, resample and window audio: pure functions on numpy arrays.

WAV and FLAC (and whatever libsndfile reads) go through soundfile; other formats (MP3,
OGG/Opus, WebM, M4A) through PyAV, which faster-whisper already depends on. torchaudio is
used for resampling only: its loader needs torchcodec and a system FFmpeg.
"""

from __future__ import annotations

import io
import re

import numpy as np

SAMPLE_RATE = 16_000


class AudioError(ValueError):
    """Audio that cannot be used; the message says why in words a person understands."""


def decode_audio(data: bytes, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Encoded audio bytes -> mono float32 samples in [-1, 1] at ``sample_rate``."""
    if len(data) == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        samples, rate = _decode_soundfile(data)
    except AudioError:
        raise
    except Exception as sf_error:  # libsndfile does not know the format: try FFmpeg
        try:
            samples, rate = _decode_av(data)
        except AudioError:
            raise
        except Exception as av_error:
            raise AudioError(
                "not a readable audio file (libsndfile: "
                f"{_first_line(sf_error)}; ffmpeg: {_first_line(av_error)})"
            ) from None
    if samples.size == 0:
        raise AudioError("the file holds no audio samples")
    if not np.all(np.isfinite(samples)):
        raise AudioError("the audio holds NaN or infinite samples")
    return resample(samples, rate, sample_rate)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    line = re.sub(r"^Error opening <[^>]*>: ", "", line)  # soundfile names the BytesIO object
    line = re.sub(r"^\[Errno -?\d+\] ", "", line)
    return re.sub(r": '<none>'$", "", line).rstrip(".")


def _check_wav_length(data: bytes) -> None:
    """libsndfile quietly clamps a cut-off WAV to what is there: compare with the header."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            if size not in (0, 0xFFFFFFFF) and pos + 8 + size > len(data):
                have = len(data) - pos - 8
                raise AudioError(
                    f"truncated WAV file: the header announces {size} bytes of audio, {have} present"
                )
            return
        pos += 8 + size + (size & 1)


def _decode_soundfile(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile

    _check_wav_length(data)
    with soundfile.SoundFile(io.BytesIO(data)) as f:
        rate = f.samplerate
        expected = f.frames
        samples = f.read(dtype="float32", always_2d=True)
    if expected > 0 and samples.shape[0] < expected:
        raise AudioError(
            f"truncated file: the header announces {expected} frames, only {samples.shape[0]} present"
        )
    return samples.mean(axis=1), rate


def _decode_av(data: bytes) -> tuple[np.ndarray, int]:
    import av

    chunks = []
    with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise AudioError("the file has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise AudioError("the audio stream decodes to no samples")
    return np.concatenate(chunks).astype(np.float32), SAMPLE_RATE


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling (torchaudio's sinc interpolation)."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if rate == target:
        return samples
    import torch
    import torchaudio.functional as F

    out = F.resample(torch.from_numpy(samples), orig_freq=rate, new_freq=target)
    return out.numpy().astype(np.float32)


def duration_s(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    return float(len(samples)) / sample_rate


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
