"""Build a config from a YAML file, keyword values and ``key=value`` overrides; check what a
run needs; dump the resolved config saved beside every output."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from raymer.errors import UsageError

from .command import min_confidence
from .extract import ExtractConfig
from .recognize import RecognizeConfig
from .serve import ServeConfig
from .train import TrainConfig

C = TypeVar("C", bound=BaseModel)


class ConfigError(UsageError):
    """A config file or override that cannot be used; the message says which and why."""


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b": {"c": "x"}}``; values are parsed as YAML."""
    result: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        node = result
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        value = yaml.safe_load(raw) if raw != "" else None
        # A mapping given whole (holdout={} or holdout={a: [x]}) replaces the file's mapping;
        # dotted keys (finetune.top_layers=3) change one entry of it.
        node[leaf] = _Whole(value) if isinstance(value, dict) else value
    return result


class _Whole(dict):
    """An override's mapping value: it replaces, where dotted keys merge."""


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, _Whole):
            merged[key] = dict(value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    **values: Any,
) -> C:
    """Build ``cls`` from a YAML file, then keyword values, then ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path} must hold a mapping, not {type(loaded).__name__}"
            )
        data = loaded
    data = _merge(data, {k: v for k, v in values.items() if v is not None})
    return validated(cls, _merge(data, parse_overrides(overrides or [])))


def validated(cls: type[C], data: dict[str, Any]) -> C:
    """``cls(**data)``, or a ``ConfigError`` naming each setting that is wrong and why: the
    one wording of a bad setting, from a file, the command line or the library."""
    try:
        return cls(**data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"invalid {cls.__name__}: {problems}") from None


class MinConfidence(BaseModel, extra="forbid"):
    """``min_confidence`` given alone (the library's keyword, infer's flag)."""

    min_confidence: float = min_confidence()


def checked_min_confidence(value: Any) -> float:
    """``min_confidence`` checked as a config file's would be (``ConfigError`` otherwise)."""
    return validated(MinConfidence, {"min_confidence": value}).min_confidence


# The config of each command that runs from one (raymer submit sends it resolved).
COMMAND_CONFIGS: dict[str, type[BaseModel]] = {
    "extract": ExtractConfig,
    "train": TrainConfig,
    "compare": TrainConfig,
    "crossval": TrainConfig,
    "recognize": RecognizeConfig,
    "serve": ServeConfig,
}

# The settings a run cannot do without, by config: extract reads input, train reads features.
RUN_PATHS: dict[type, tuple[str, ...]] = {
    ExtractConfig: ("input", "output"),
    TrainConfig: ("features", "output"),
    RecognizeConfig: ("input", "checkpoint", "output"),
}


def require_paths(cfg: BaseModel, command: str) -> None:
    """Raise ``ConfigError`` naming what ``command`` lacks of its ``RUN_PATHS``."""
    keys = RUN_PATHS.get(type(cfg), ())
    if any(not getattr(cfg, k) for k in keys):
        flags = "/".join(f"--{k}" for k in keys)
        raise ConfigError(f"{command} needs {' and '.join(keys)} ({flags}, or in the config)")


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML, saved beside every output."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
