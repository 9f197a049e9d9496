"""Whisper's input features are the same bits in every process: a Ray worker runs with one
BLAS thread (``OMP_NUM_THREADS=1``), a notebook with several, and a last-bit difference in the
log-mel is enough for Whisper's beam search to choose another word now and then."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

SCRIPT = """
import hashlib, sys
import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor
from raymer.models.whisper_input import log_mel
rng = np.random.default_rng(3)
samples = (0.1 * rng.standard_normal(16_000 * 20)).astype(np.float32)
extractor = FeatureExtractor()
ours = log_mel(extractor, samples, 3000)
theirs = extractor(samples)
print(hashlib.sha256(ours.tobytes()).hexdigest(), float(np.abs(ours[:, :2000] - theirs[:, :2000]).max()))
"""


def _run(threads: int) -> subprocess.Popen:
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, text=True
    )


def test_log_mel_does_not_depend_on_the_number_of_blas_threads():
    runs = [_run(1), _run(4)]
    outputs = [run.communicate(timeout=60)[0].split() for run in runs]
    assert all(run.returncode == 0 for run in runs)
    (one, diff_one), (four, diff_four) = outputs
    assert one == four  # the same bits
    # and still Whisper's features (faster-whisper's extractor, summed another way)
    assert float(diff_one) < 1e-4 and float(diff_four) < 1e-4


def test_log_mel_pads_and_cuts_to_the_window():
    from faster_whisper.feature_extractor import FeatureExtractor

    from raymer.models.whisper_input import log_mel

    clip = np.zeros(16_000, np.float32)
    assert log_mel(FeatureExtractor(), clip, 800).shape == (80, 800)
    assert log_mel(FeatureExtractor(), np.ones(16_000 * 40, np.float32), 3000).shape == (80, 3000)
