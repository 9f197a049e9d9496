"""How a command's config holds the settings parts (``raymer.config.parts``) and its own:
each part merged over the command's defaults, a key from before the grouping refused with
its new place, a part's setting the command has no use for refused with the reason.

In YAML parts are mappings (``decode: {max_file_mb: 100}``), on the command line dotted
keys (``decode.max_file_mb=100``, ``resources.asr.actors=4``); a part given in part keeps
the command's defaults for the rest. A key from before the grouping (``max_file_mb=100``)
is refused with its new place.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field, model_validator


class Part(BaseModel, extra="forbid"):
    """A group of settings held by several commands' configs. ``OLD_KEYS`` (optional): keys
    from before the grouping -> their place now, refused with it."""


def max_attempts():
    """The bound on worker crashes, shared by extract and recognize (``faults.CrashLedger``)."""
    return Field(
        3,
        ge=1,
        le=20,
        description="A clip or recording whose worker process dies this many times (a crash, "
        "an OOM kill) becomes an error row instead of being retried again.",
    )


MIN_CONFIDENCE = (
    "An answer whose top score is under this gets the label `uncertain` (its scores still "
    "given); 0: always the top label. A calibrated model's top score says how often such an "
    "answer is right (its evaluation's report: the share each value leaves unlabelled)."
)


def min_confidence():
    """The confidence an answer needs for a label, shared by recognize, serve, infer and
    the library (``raymer.trained.checkpoint.top_label`` applies it)."""
    return Field(0.0, ge=0, le=1, description=MIN_CONFIDENCE)


def part(cls: type[Part], **defaults: Any):
    """A command's field holding ``cls`` with this command's ``defaults``."""
    return Field(default_factory=lambda: cls(**defaults), description=_first_line(cls))


def _first_line(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split("\n\n")[0].split())


class CommandConfig(BaseModel, extra="forbid"):
    """A command's config: its parts merged over the command's defaults, a key from before
    the grouping refused with its new place (``RENAMED``: keys that changed name), and a
    part's setting this command has no use for refused with the reason (``UNUSED``: dotted
    key -> why), unless it is the command's own default (a dumped config reloads)."""

    RENAMED: ClassVar[dict[str, str]] = {}
    UNUSED: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _grouped(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        moved = cls.moved_keys()
        old = [k for k in data if k in moved]
        if old:
            places = "; ".join(f"`{k}` is now `{moved[k]}`" for k in old)
            raise ValueError(
                f"{places} (shared settings are grouped: in YAML under `{moved[old[0]].split('.')[0]}:`, "
                f"on the command line as {moved[old[0]]}=...)"
            )
        merged = dict(data)
        for name, field in cls.model_fields.items():
            given = data.get(name)
            if _is_part(field.annotation) and isinstance(given, dict) and field.default_factory:
                defaults = field.default_factory().model_dump()
                cls._check_used(name, given, defaults)
                merged[name] = _deep_merge(defaults, given)
        return merged

    @classmethod
    def _check_used(cls, name: str, given: dict, defaults: dict) -> None:
        default = flat(defaults, f"{name}.")
        for key, value in flat(given, f"{name}.").items():
            why = cls._unused(key)
            if why and value != default.get(key):
                raise ValueError(f"`{key}` is not a setting of this command: {why}")

    @classmethod
    def moved_keys(cls) -> dict[str, str]:
        """Old flat key -> its place now (``decode.max_file_mb``)."""
        moved = dict(cls.RENAMED)
        for name, field in cls.model_fields.items():
            if not _is_part(field.annotation):
                continue
            old = getattr(field.annotation, "OLD_KEYS", {})  # a part's own keys of old
            moved |= {k: v for k, v in old.items() if not cls._unused(v)}
            for key, inner in field.annotation.model_fields.items():
                nested = isinstance(inner.annotation, type) and issubclass(
                    inner.annotation, BaseModel
                )
                if key not in cls.model_fields and not nested and not cls._unused(f"{name}.{key}"):
                    moved.setdefault(key, f"{name}.{key}")
        return moved

    @classmethod
    def _unused(cls, key: str) -> str | None:
        """Why this command has no use for ``key`` (it or a part above it in ``UNUSED``)."""
        return next(
            (why for k, why in cls.UNUSED.items() if key == k or key.startswith(k + ".")), None
        )


def _deep_merge(base: dict, given: dict) -> dict:
    out = dict(base)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _is_part(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Part)


def flat(settings: dict, prefix: str = "") -> dict:
    """A config's dump with its parts as dotted keys (``decode.max_file_mb``): what an
    output's settings check compares."""
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out
