"""raymer: multimodal (speech + transcript) emotion recognition at corpus scale on Ray.

The public API. Names are imported on first use, so ``import raymer`` (and ``raymer --help``)
stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # in-process predictions (notebooks, scripts)
    "Recognizer": "raymer.inference.recognizer",
    # the corpus-scale commands, as functions of their typed configs
    "extract": "raymer.pipeline.extract",
    "recognize": "raymer.pipeline.recognize",
    "train": "raymer.training.trainer",
    "compare": "raymer.training.compare",
    "crossval": "raymer.training.crossval",
    "evaluate": "raymer.training.evaluate",
    "infer": "raymer.training.infer",
    "export": "raymer.trained.checkpoint",
    "ExtractConfig": "raymer.config",
    "RecognizeConfig": "raymer.config",
    "TrainConfig": "raymer.config",
    "FinetuneConfig": "raymer.config",
    "ServeConfig": "raymer.config",
    "SynthConfig": "raymer.config",
    "load_config": "raymer.config",
    "ExtractSummary": "raymer.pipeline.extract",
    "RecognizeSummary": "raymer.pipeline.recognize",
    "TrainSummary": "raymer.training.report",
    "Evaluation": "raymer.training.results",
    "InferSummary": "raymer.training.results",
    "Comparison": "raymer.training.results",
    "CrossvalReport": "raymer.training.results",
    # errors
    "UsageError": "raymer.errors",
    "RunError": "raymer.errors",
    "ConfigError": "raymer.config",
    "AudioError": "raymer.audio.decode",
    # building blocks
    "read_rows": "raymer.pipeline.inprocess",
    "synthesize_corpus": "raymer.corpora.synth",
    "resolve_model": "raymer.models.registry",
    "decode_audio": "raymer.audio.decode",
    "FEATURES_SCHEMA": "raymer.contract.schema",
}

__all__ = ["__version__", *_EXPORTS]


def __dir__() -> list[str]:
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'raymer' has no attribute {name!r}")
