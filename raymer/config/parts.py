"""Settings the commands share, defined once: the decode guard (``decode``), the no-speech
rule (``speech``), how long recordings are cut (``segment``) and where the work runs
(``resources``). ``extract``, ``recognize``, ``serve`` and ``train`` hold them as they are
(each with its own defaults; a setting a command has no use for is refused there with the
reason, and left out of its ``--help``), and so does the library
(``Recognizer.from_checkpoint(decode=..., speech=..., segment=...)``); the engine reads
them through ``DecodeLimits.of``, ``SpeechRule.of``, ``SegmentOptions.of`` and
``ResourcesConfig.device_of``.

In YAML they are mappings (``decode: {max_file_mb: 100}``), on the command line dotted keys
(``decode.max_file_mb=100``, ``resources.asr.actors=4``); a part given in part keeps the
command's defaults for the rest.
A key from before the grouping (``max_file_mb=100``) is refused with its new place.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

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


class StageResources(BaseModel, extra="forbid"):
    """The workers of one stage: how many, and what each one gets."""

    actors: int = Field(1, ge=1, description="Workers of this stage (Ray actors or Train workers).")
    num_cpus: float = Field(
        1.0, gt=0, description="CPUs reserved per worker (fractional on small machines)."
    )
    num_gpus: float = Field(
        1.0,
        ge=0,
        description="GPUs per worker when use_gpu is set (fractions share one; 0: on CPU).",
    )
    threads: int = Field(
        1, ge=0, description="torch / CTranslate2 threads per worker (0: the library's default)."
    )


class ResourcesConfig(Part):
    """Where the work runs and what each worker gets: the Whisper stage (``asr``), the text
    encoder and emotion model stage (``model``) and the decode tasks."""

    use_gpu: bool = Field(False, description="Give the stages' workers GPUs (num_gpus each).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the model stages run; auto picks cuda when use_gpu is set."
    )
    asr: StageResources = Field(default_factory=StageResources, description="Whisper's workers.")
    model: StageResources = Field(
        default_factory=StageResources,
        description="The text encoder's and the emotion model's workers.",
    )
    decode_num_cpus: float = Field(
        0.25, gt=0, description="CPUs reserved per decoding (and segmenting) task."
    )

    def device_of(self, stage: StageResources) -> str:
        """``cpu`` or ``cuda``: where a worker of ``stage`` runs its models."""
        if not self.use_gpu or stage.num_gpus <= 0:
            return "cpu"
        return "cpu" if self.device == "cpu" else "cuda"

    def gpus(self, stage: StageResources) -> float:
        """GPUs a worker of ``stage`` asks Ray for."""
        return stage.num_gpus if self.use_gpu else 0.0


# Keys from before the grouping of resources (the old flat names of extract, recognize,
# serve and train) -> their place now.
RESOURCE_KEYS = {
    "asr_actors": "resources.asr.actors",
    "asr_num_cpus": "resources.asr.num_cpus",
    "asr_num_gpus": "resources.asr.num_gpus",
    "asr_threads": "resources.asr.threads",
    **{
        f"{old}_{key}": f"resources.model.{new}"
        for old in ("text", "model")
        for key, new in (
            ("actors", "actors"),
            ("num_cpus", "num_cpus"),
            ("num_gpus", "num_gpus"),
            ("threads", "threads"),
        )
    },  # fmt: skip
    "num_workers": "resources.model.actors",
    "cpus_per_worker": "resources.model.num_cpus",
    "replica_num_cpus": "resources.asr.num_cpus",
    "replica_threads": "resources.asr.threads",
    "stage_num_cpus": "resources.model.num_cpus",
}


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
            if field.annotation is ResourcesConfig:
                moved |= {k: v for k, v in RESOURCE_KEYS.items() if not cls._unused(v)}
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
