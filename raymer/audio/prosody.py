"""Prosody: openSMILE's eGeMAPS v02 low-level descriptors (pitch, loudness, jitter, shimmer,
HNR, spectral slopes and formants: the features every speech emotion baseline uses), at
100 Hz, averaged to the audio frame rate. No Ray, no torch.

With ``prosody: true`` the featurizer appends them to the Whisper frames, so every path that
carries frames (extraction, recognize, serve, the library) carries them too."""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

from raymer.audio.decode import SAMPLE_RATE
from raymer.audio.frames import pool_frames
from raymer.extras import require

PROSODY_DIM = 25  # eGeMAPS v02 low-level descriptors
LLD_RATE_HZ = 100  # openSMILE's 10 ms hop
FEATURE_SET = "egemaps/v02/eGeMAPSv02"  # opensmile.FeatureSet.eGeMAPSv02
LEVEL = "lld"  # opensmile.FeatureLevel.LowLevelDescriptors


@functools.cache
def _smile_lib():
    """openSMILE's own C API wrapper (``opensmile/core/lib.py``: ctypes and numpy) and the
    package's config folder, loaded without the ``opensmile`` package itself: its import
    brings pandas, audinterface and audobject, about 100 MB in every process that judges a
    clip (each Whisper actor, each replica, the portable runtime), for a table raymer turns
    straight back into an array. The descriptors are the package's to the bit
    (``tests/unit/test_augment.py`` compares them with ``opensmile.Smile``'s)."""
    require("opensmile", "prosody", "prosody (prosody: true)")
    root = os.path.join(importlib.util.find_spec("opensmile").submodule_search_locations[0], "core")
    path = os.path.join(root, "lib.py")
    if not os.path.isfile(path) or not os.path.isdir(os.path.join(root, "config", "egemaps")):
        raise RuntimeError(
            f"this opensmile has no {path} and config/egemaps beside it (the layout of "
            "opensmile 2.5-2.6, which raymer drives): install opensmile==2.6.0"
        )
    spec = importlib.util.spec_from_file_location("raymer_opensmile_lib", path)
    lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lib)
    return lib, os.path.join(root, "config")


def _lld(samples: np.ndarray) -> np.ndarray:
    """(frames, PROSODY_DIM) descriptors of 16 kHz float samples, as
    ``opensmile.Smile(eGeMAPSv02, LowLevelDescriptors).process_signal`` computes them (its
    ``_extract``: 16-bit samples through the external source, one row a frame)."""
    lib, config = _smile_lib()
    shared = os.path.join(config, "shared")
    options = {
        "sink": os.path.join(shared, "standard_external_data_output_single.conf.inc"),
        "sinkLevel": LEVEL,
        "bufferModeRbConf": os.path.join(shared, "BufferModeRb.conf.inc"),
        "frameModeFunctionalsConf": os.path.join(shared, "FrameModeFunctionals.conf.inc"),
        "source": os.path.join(shared, "standard_external_wave_input.conf.inc"),
        "sampleRate": SAMPLE_RATE,
        "nBits": 16,
    }
    pcm = (np.asarray(samples, dtype=np.float32) * 32768).astype(np.int16)
    rows: list[np.ndarray] = []
    smile = lib.OpenSMILE()
    smile.initialize(os.path.join(config, FEATURE_SET + ".conf"), options=options, loglevel=2)
    try:
        smile.external_sink_set_callback_ex("extsink", lambda data, _: rows.append(data.copy()))
        smile.external_audio_source_write_data("extsource", bytes(pcm))
        smile.external_audio_source_set_eoi("extsource")
        smile.run()
    finally:
        smile.free()
    if not rows:
        return np.zeros((0, PROSODY_DIM), dtype=np.float32)
    return np.vstack(rows).astype(np.float32, copy=False)


def prosody_frames(samples: np.ndarray, frame_rate_hz: float, n_frames: int) -> np.ndarray:
    """(n_frames, PROSODY_DIM) float32: the descriptors of 16 kHz ``samples`` averaged over
    each frame of ``frame_rate_hz`` and cut or zero-padded to the ``n_frames`` the Whisper
    frames of the same clip have (a clip too short for openSMILE's window: zeros)."""
    out = np.zeros((n_frames, PROSODY_DIM), dtype=np.float32)
    samples = np.asarray(samples, dtype=np.float32)
    if n_frames == 0 or len(samples) < SAMPLE_RATE // 10:
        return out
    lld = _lld(samples)
    if len(lld) == 0:
        return out
    pooled = pool_frames(np.nan_to_num(lld), max(1, round(LLD_RATE_HZ / frame_rate_hz)))
    n = min(n_frames, len(pooled))
    out[:n] = pooled[:n]
    return out
