"""Decode, resample and window audio: pure functions on numpy arrays.

WAV and FLAC (and whatever libsndfile reads) go through soundfile; other formats (MP3,
OGG/Opus, WebM, M4A) through PyAV, which faster-whisper already depends on. torchaudio is
used for resampling only: its loader needs torchcodec and a system FFmpeg.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import time
from dataclasses import dataclass

import numpy as np

from raymer.errors import UsageError

SAMPLE_RATE = 16_000
MIN_SAMPLE_RATE = 4_000  # below this no speech survives (telephone audio is 8 kHz)
BLOCK_S = 10.0  # seconds decoded between two checks of the limits


class AudioError(UsageError):
    """Audio that cannot be used; the message says why in words a person understands."""


class AudioTooLarge(AudioError):
    """Audio over a size or duration limit (HTTP 413 when serving)."""


@dataclass(frozen=True)
class DecodeLimits:
    """The decode guard shared by ``extract``, ``recognize`` and ``serve``: what a file may
    cost. Each limit is checked before the work it protects: the file's size and kind
    before a read (``check_file``), its header's sample rate, channels and duration before a
    decode, and while decoding, the decoded length (a header may lie) and the wall clock.

    Attributes:
        max_duration_s: longest audio accepted.
        max_file_mb: largest file read (an upload's limit when serving).
        max_channels: most channels accepted.
        timeout_s: wall-clock time a decode may take.
        min_sample_rate: lowest sample rate accepted (Hz).
    """

    max_duration_s: float = 600.0
    max_file_mb: float = 1024.0
    max_channels: int = 32
    timeout_s: float = 60.0
    min_sample_rate: int = MIN_SAMPLE_RATE

    @classmethod
    def of(cls, cfg) -> DecodeLimits:
        """From a config with ``max_duration_s``, ``max_channels``, ``decode_timeout_s`` and
        ``max_file_mb`` (``max_upload_mb`` for ``ServeConfig``)."""
        size = getattr(cfg, "max_file_mb", None) or cfg.max_upload_mb
        return cls(
            max_duration_s=cfg.max_duration_s,
            max_file_mb=size,
            max_channels=cfg.max_channels,
            timeout_s=cfg.decode_timeout_s,
        )

    def check_size(self, size: int) -> None:
        if size == 0:
            raise AudioError("empty file (0 bytes)")
        if size > self.max_file_mb * 1024 * 1024:
            raise AudioTooLarge(
                f"the file is {size / 1024 / 1024:,.1f} MB, over max_file_mb={self.max_file_mb:g}"
            )

    def check_header(self, rate: int, channels: int, duration: float | None) -> None:
        """Refuse from the header alone (``duration`` None: the header does not say)."""
        if 0 < rate < self.min_sample_rate:
            raise AudioError(
                f"the header declares a sample rate of {rate} Hz, below the "
                f"{self.min_sample_rate} Hz that speech needs"
            )
        if channels > self.max_channels:
            raise AudioError(
                f"the file has {channels} channels, over max_channels={self.max_channels}"
            )
        if duration is not None and duration > self.max_duration_s:
            raise AudioTooLarge(
                f"the audio lasts {duration:,.1f} s (its header says), over "
                f"max_duration_s={self.max_duration_s:g}"
            )

    def check_progress(self, decoded_s: float, spent_s: float) -> None:
        """While decoding: the audio decoded and the time spent decoding it so far."""
        if decoded_s > self.max_duration_s:
            raise AudioTooLarge(
                f"the audio decodes to more than max_duration_s={self.max_duration_s:g} s"
            )
        if spent_s > self.timeout_s:
            raise AudioError(
                f"decoding took longer than decode_timeout_s={self.timeout_s:g} s "
                f"({decoded_s:,.1f} s of audio decoded)"
            )


UNLIMITED = DecodeLimits(math.inf, math.inf, 1 << 16, math.inf)

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def check_file(uri: str, limits: DecodeLimits) -> int:
    """Before a read: ``uri`` must be a regular file within ``max_file_mb``; returns its size.
    (Opening a FIFO or a device blocks or never ends, so they are refused from ``stat``.)"""
    from raymer import storage

    if storage.is_remote(uri):
        import pyarrow.fs as pafs

        fs, path = storage.filesystem(uri)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(uri)
        if info.type != pafs.FileType.File:
            raise AudioError("not a file (a directory or prefix)")
        size = int(info.size or 0)
    else:
        st = os.stat(storage.filesystem(uri)[1])  # follows links, as open() would
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise AudioError(f"not a regular file: it is {kind}")
        size = st.st_size
    limits.check_size(size)
    return size


def decode_audio(
    data: bytes, sample_rate: int = SAMPLE_RATE, limits: DecodeLimits | None = None
) -> np.ndarray:
    """Encoded audio bytes -> mono float32 samples in [-1, 1] at ``sample_rate``, within
    ``limits`` (the defaults of ``DecodeLimits``): refused from the header where it tells,
    and while decoding otherwise, before the whole file is decoded."""
    limits = limits or DecodeLimits()
    limits.check_size(len(data))
    start = time.monotonic()
    try:
        samples, rate = _decode_soundfile(data, limits, start)
    except AudioError:
        raise
    except Exception as sf_error:  # libsndfile does not know the format: try FFmpeg
        try:
            samples, rate = _decode_av(data, limits, start)
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


def _decode_soundfile(data: bytes, limits: DecodeLimits, start: float) -> tuple[np.ndarray, int]:
    import soundfile

    _check_wav_length(data)
    with soundfile.SoundFile(io.BytesIO(data)) as f:
        rate, expected = f.samplerate, f.frames
        limits.check_header(rate, f.channels, expected / rate if expected > 0 else None)
        block, blocks, read = max(1, int(BLOCK_S * rate)), [], 0
        while True:  # a block at a time: the limits hold even where the header is wrong
            part = f.read(block, dtype="float32", always_2d=True)
            if not len(part):
                break
            blocks.append(part.mean(axis=1))
            read += len(part)
            limits.check_progress(read / rate, time.monotonic() - start)
    if expected > 0 and read < expected:
        raise AudioError(
            f"truncated file: the header announces {expected} frames, only {read} present"
        )
    return (np.concatenate(blocks) if blocks else np.zeros(0, np.float32)), rate


def _decode_av(data: bytes, limits: DecodeLimits, start: float) -> tuple[np.ndarray, int]:
    import av

    chunks, decoded = [], 0
    with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise AudioError("the file has no audio stream")
        limits.check_header(*av_header(container))
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                decoded += chunks[-1].size
            limits.check_progress(decoded / SAMPLE_RATE, time.monotonic() - start)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise AudioError("the audio stream decodes to no samples")
    return np.concatenate(chunks).astype(np.float32), SAMPLE_RATE


def av_header(container) -> tuple[int, int, float | None]:
    """(sample rate, channels, duration or None) of a PyAV container's first audio stream."""
    stream = container.streams.audio[0]
    rate, channels = stream.rate or 0, stream.channels or 0
    if stream.duration is not None and stream.time_base is not None:
        return rate, channels, float(stream.duration * stream.time_base)
    if container.duration is not None:
        return rate, channels, container.duration / 1_000_000  # av.time_base: microseconds
    return rate, channels, None


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
