"""Shared fixtures: synthesised audio (never downloaded) and the sample corpus."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tone_wav(tmp_path: Path) -> Path:
    t = np.arange(16_000) / 16_000
    path = tmp_path / "tone.wav"
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000)
    return path


@pytest.fixture(scope="session")
def piper_corpus(tmp_path_factory) -> Path:
    """12 clips in the piper voice (clear enough for whisper tiny.en), all four labels."""
    from raymer.corpora.synth import synthesize_corpus

    return synthesize_corpus(tmp_path_factory.mktemp("piper_corpus"), clips=12, seed=7, speakers=1)


def write_silent_flac(path: Path, seconds: float, rate: int = 8_000) -> Path:
    """A decompression bomb: hours of silence in a few hundred KB of FLAC."""
    block = np.zeros(rate * 600, dtype=np.int16)
    with soundfile.SoundFile(path, "w", samplerate=rate, channels=1, format="FLAC") as f:
        for _ in range(int(seconds // 600)):
            f.write(block)
    return path


def write_sparse_wav(path: Path, mb: float = 20, rate: int = 200) -> Path:
    """A WAV declaring a tiny sample rate: 20 MB of zeros at 200 Hz is 50,000 s (sparse)."""
    import struct

    size = int(mb * 1024 * 1024)
    header = (
        b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", size)
    )  # fmt: skip
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + size)
    return path


def pids_titled(part: str) -> list[int]:
    """Processes of this machine whose title holds ``part`` (Ray titles a worker process
    ``ray::<actor class>``), found in /proc: no dashboard needed."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and part in title:
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="session")
def processes():
    """``pids_titled`` for a test that kills real processes."""
    return pids_titled


@pytest.fixture(scope="session")
def sparse_wav():
    """``write_sparse_wav`` for a test that needs its own size."""
    return write_sparse_wav


@pytest.fixture(scope="session")
def hostile_files(tmp_path_factory) -> dict[str, Path]:
    """Files that must be refused fast: two decompression bombs, a FIFO and a directory
    named like audio. (Each name is also its expected id.)"""
    root = tmp_path_factory.mktemp("hostile")
    fifo = root / "hostile-fifo.wav"
    os.mkfifo(fifo)
    folder = root / "hostile-dir.wav"
    folder.mkdir()
    return {
        "hostile-bomb": write_silent_flac(root / "hostile-bomb.flac", 2 * 3600),
        "hostile-sparse": write_sparse_wav(root / "hostile-sparse.wav"),
        "hostile-fifo": fifo,
        "hostile-dir": folder,
    }
