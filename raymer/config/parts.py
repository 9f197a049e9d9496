"""Settings the commands share, defined once: the decode guard (``decode``), the no-speech
rule (``speech``) and how long recordings are cut (``segment``). ``extract``, ``recognize``
and ``serve`` hold them as they are (each with its own defaults), and so does the library
(``Recognizer.from_checkpoint(decode=..., speech=..., segment=...)``); the engine reads
them through ``DecodeLimits.of``, ``SpeechRule.of`` and ``SegmentOptions.of``.

In YAML they are mappings (``decode: {max_file_mb: 100}``), on the command line dotted keys
(``decode.max_file_mb=100``); a part given in part keeps the command's defaults for the rest.
A key from before the grouping (``max_file_mb=100``) is refused with its new place.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field, model_validator


class Part(BaseModel, extra="forbid"):
    """A group of settings held by several commands' configs."""


class DecodeConfig(Part):
    """The decode guard: what one file may cost, each limit checked before the work it
    protects (``raymer.audio.DecodeLimits``)."""

    max_file_mb: float = Field(
        1024.0,
        gt=0,
        description="Files (uploads, when serving) larger than this are refused before they "
        "are read.",
    )
    max_duration_s: float = Field(
        600.0, gt=0, description="Audio longer than this (from its header) is refused."
    )
    max_channels: int = Field(
        32, ge=1, description="Audio with more channels than this is refused (from its header)."
    )
    decode_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Decoding one file may take this long (wall clock), else it is an error.",
    )


class SpeechConfig(Part):
    """The no-speech rule: audio without speech gets no emotion (``SpeechRule``)."""

    vad_threshold: float = Field(
        0.5, gt=0, lt=1, description="Silero VAD's speech probability threshold."
    )
    min_speech_s: float = Field(
        0.3, ge=0, description="Audio with less speech than this (VAD) is no_speech: no emotion."
    )
    no_speech_prob: float = Field(
        0.6,
        gt=0,
        le=1,
        description="Audio whose Whisper no-speech probability passes this, with a low "
        "mean log-probability (below logprob_threshold), is no_speech.",
    )
    logprob_threshold: float = Field(
        -1.0, description="Whisper's own rule for silence, with no_speech_prob."
    )


class SegmentConfig(Part):
    """How a long recording is cut into segments (``raymer.segment.split``): the one rule of
    ``recognize``, ``serve`` and the library."""

    segment_over_s: float = Field(
        30.0,
        gt=0,
        le=30,
        description="A recording up to this long is one segment; a longer one is cut at "
        "pauses by voice activity detection (Silero VAD).",
    )
    max_segment_s: float = Field(
        30.0, ge=2, le=30, description="Longest segment (Whisper's window is 30 s)."
    )
    min_silence_s: float = Field(
        1.0, gt=0, le=10, description="A pause at least this long ends a segment."
    )
    speech_pad_s: float = Field(
        0.2, ge=0, le=2, description="Audio kept on each side of the speech the VAD found."
    )
    chunk_s: float = Field(
        300.0,
        ge=60,
        le=3600,
        description="Seconds of audio decoded and searched for pauses at a time: memory per "
        "file is bounded by this, whatever the recording's length.",
    )

    @model_validator(mode="after")
    def _segments_fit(self) -> SegmentConfig:
        if self.max_segment_s < self.segment_over_s:
            raise ValueError(
                f"max_segment_s={self.max_segment_s:g} is below segment_over_s="
                f"{self.segment_over_s:g}: a recording kept whole would be longer than a segment"
            )
        return self


def max_attempts():
    """The bound on worker crashes, shared by extract and recognize (``faults.CrashLedger``)."""
    return Field(
        3,
        ge=1,
        le=20,
        description="A clip or recording whose worker process dies this many times (a crash, "
        "an OOM kill) becomes an error row instead of being retried again.",
    )


def part(cls: type[Part], **defaults: Any):
    """A command's field holding ``cls`` with this command's ``defaults``."""
    return Field(default_factory=lambda: cls(**defaults), description=_first_line(cls))


def _first_line(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split("\n\n")[0].split())


class CommandConfig(BaseModel, extra="forbid"):
    """A command's config: its parts merged over the command's defaults, and a key from
    before the grouping refused with its new place (``RENAMED``: keys that changed name)."""

    RENAMED: ClassVar[dict[str, str]] = {}

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
                merged[name] = field.default_factory().model_dump() | given
        return merged

    @classmethod
    def moved_keys(cls) -> dict[str, str]:
        """Old flat key -> its place now (``decode.max_file_mb``)."""
        moved = dict(cls.RENAMED)
        for name, field in cls.model_fields.items():
            if _is_part(field.annotation):
                for key in field.annotation.model_fields:
                    if key not in cls.model_fields:
                        moved.setdefault(key, f"{name}.{key}")
        return moved


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
