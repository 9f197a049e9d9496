"""Typed run configurations and ``load_config(cls, path, overrides)``.

No torch and no ray here: configs are validated before any heavy import, so a bad value
fails in milliseconds with a message that names the field. One module per command family
(``extract``, ``train``, ``recognize``, ``serve``), the parts they share (``parts``: decode,
speech, segment) and the loading rules (``loading``); import from here.
"""

from .extract import AugmentConfig, ExtractConfig, ExtractSettings, SynthConfig
from .loading import (
    COMMAND_CONFIGS,
    RUN_PATHS,
    ConfigError,
    dump_config,
    load_config,
    parse_overrides,
    require_paths,
    validated,
)
from .parts import DecodeConfig, SegmentConfig, SpeechConfig
from .recognize import RecognizeConfig
from .serve import JOBS_ADDRESS, ServeConfig
from .train import FinetuneConfig, TrainConfig

__all__ = [
    "COMMAND_CONFIGS",
    "JOBS_ADDRESS",
    "RUN_PATHS",
    "AugmentConfig",
    "ConfigError",
    "DecodeConfig",
    "ExtractConfig",
    "ExtractSettings",
    "FinetuneConfig",
    "RecognizeConfig",
    "SegmentConfig",
    "ServeConfig",
    "SpeechConfig",
    "SynthConfig",
    "TrainConfig",
    "dump_config",
    "load_config",
    "parse_overrides",
    "require_paths",
    "validated",
]
