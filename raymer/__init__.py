"""raymer: multimodal (speech + transcript) emotion recognition at corpus scale on Ray.

The public API. Names are imported on first use, so ``import raymer`` (and ``raymer --help``)
stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ExtractConfig": "raymer.config",
    "SynthConfig": "raymer.config",
    "ConfigError": "raymer.config",
    "load_config": "raymer.config",
    "extract": "raymer.pipeline.extract",
    "ExtractSummary": "raymer.pipeline.extract",
    "read_inputs": "raymer.corpora.manifest",
    "synthesize_corpus": "raymer.corpora.synth",
    "resolve_model": "raymer.models.registry",
    "decode_audio": "raymer.audio",
    "FEATURES_SCHEMA": "raymer.schema",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'raymer' has no attribute {name!r}")
