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
